"""TRL's side of the GRPO step benchmark (scripts/bench_grpo_vs_trl.sh): GRPOTrainer on the same checkpoint, the
same records and images (RePIC's training prompt: every image, then the problem and its task suffix), G = 8, 2
prompts per step, exactly 64 new tokens (min_new_tokens = max), beta 0.04, float32 on the CPU, full fine-tuning.
Prints one JSON line: mean seconds per step over steps 3..N, and the mean prompt length in tokens.

Usage: python scripts/bench_trl_grpo.py --model DIR --data DATA_DIR [--steps 12]
Needs torch, transformers and trl (checked with torch 2.9.0, transformers 5.25.0, trl 1.16.0).
"""
import argparse
import json
import time
from pathlib import Path

import torch
from datasets import Dataset
from PIL import Image
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

SUFFIX = {
    "yes_no": " The final answer must be either 'yes' or 'no' with no additional output.",
    "iou": " For bounding box coordinates, return the final answer in JSON format.",
}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self.start = [], None

    def on_step_begin(self, args, state, control, **kw):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.start)


def reward(completions, **kw):
    # A cheap reward with spread, so that advantages and the loss are not zero (its cost is negligible).
    return [float(len(c[0]["content"] if isinstance(c, list) else c) % 7) for c in completions]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("/tmp/trl-bench"))
    a = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for line in (a.data / "train/records.jsonl").read_text().splitlines():
        r = json.loads(line)
        images = r["image"] if isinstance(r["image"], list) else [r["image"]]
        text = r["problem"] + SUFFIX.get(r.get("accu_reward_method", ""), "")
        prompt = [{"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]}]
        rows.append({"prompt": prompt, "images": [Image.open(a.data / p).convert("RGB") for p in images]})
    ds = Dataset.from_list(rows)
    model = Qwen2VLForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(a.model)
    cfg = GRPOConfig(
        output_dir=str(a.out), per_device_train_batch_size=16, num_generations=8, max_completion_length=64,
        generation_kwargs={"min_new_tokens": 64}, temperature=1.0, beta=0.04, loss_type="grpo",
        learning_rate=1e-6, lr_scheduler_type="constant", max_steps=a.steps, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, bf16=False, seed=0, dataloader_num_workers=0, shuffle_dataset=True,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=processor,
                          callbacks=[timer])
    trainer.train()
    lens = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    steady = timer.times[2:]
    print(json.dumps({"steps": len(timer.times), "step_s": sum(steady) / len(steady),
                      "mean_completion_length": sum(lens) / max(len(lens), 1),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
