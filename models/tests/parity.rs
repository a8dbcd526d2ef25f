//! Parity with transformers on the tiny random checkpoints in `tests/fixtures/` (made by
//! `scripts/make_parity_fixtures.py`): vision features, rope index, last logits (max abs diff <= 1e-4),
//! greedy tokens and their log-probs.

mod common;

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;

use common::{B, Reference, fixture, max_diff};
use repic_data::{Message, Part, Role};
use repic_models::qwen2_vl::rope::rope_index;
use repic_models::{ChatTokenizer, Engine, GenerateOptions, ProcessorConfig, QwenVl, VlInput};

/// Greedy decoding without a cache: returns the tokens and their log-probs.
fn greedy(model: &QwenVl<B>, input: &VlInput, n: usize) -> (Vec<u32>, Vec<f32>) {
    let dev = Default::default();
    let mut cur = input.clone();
    let (mut toks, mut lps) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let logits = model.logits(&cur, &dev).unwrap();
        let t = logits.dims()[0];
        let last: Tensor<B, 2> = logits.narrow(0, t - 1, 1);
        let lp = log_softmax(last, 1).into_data().to_vec::<f32>().unwrap();
        let (best, v) =
            lp.iter().enumerate().fold((0, f32::NEG_INFINITY), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        toks.push(best as u32);
        lps.push(v);
        cur.ids.push(best as u32);
    }
    (toks, lps)
}

fn check(name: &str) {
    let dir = fixture(name);
    let dev = Default::default();
    let model = QwenVl::<B>::load(&dir, &dev).unwrap_or_else(|e| panic!("{e}"));
    let r = Reference::load(&dir);
    for (case, entry) in r.meta["cases"].as_object().unwrap() {
        let input = r.input(case);
        let (pos, delta) = rope_index(&input.ids, model.config().tokens.image, &input.grids, 2).unwrap();
        let want_pos = r.tensor(&format!("{case}.position_ids")).unwrap().1;
        let got_pos: Vec<f64> = pos.iter().flatten().map(|&p| p as f64).collect();
        assert_eq!(got_pos, want_pos, "{name}/{case}: rope index");
        assert_eq!(delta, entry["rope_delta"].as_i64().unwrap(), "{name}/{case}: rope delta");
        if let Some((shape, want)) = r.tensor(&format!("{case}.vision_features")) {
            let got = model.image_features(&input, &dev).unwrap();
            assert_eq!(got.dims().to_vec(), shape, "{name}/{case}: vision feature shape");
            let d = max_diff(&got.into_data().to_vec::<f32>().unwrap(), &want);
            assert!(d <= 1e-4, "{name}/{case}: vision features differ by {d}");
        }
        let logits = model.logits(&input, &dev).unwrap();
        let t = logits.dims()[0];
        let last = logits.narrow(0, t - 1, 1).into_data().to_vec::<f32>().unwrap();
        let d = max_diff(&last, &r.tensor(&format!("{case}.logits_last")).unwrap().1);
        assert!(d <= 1e-4, "{name}/{case}: last logits differ by {d}");
        let want: Vec<u32> =
            entry["greedy_tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let (toks, lps) = greedy(&model, &input, want.len());
        assert_eq!(toks, want, "{name}/{case}: greedy tokens");
        // The KV-cached generation loop gives the same tokens and log-probs as full recomputation.
        let opts = GenerateOptions { max_new_tokens: want.len(), ..Default::default() };
        let cached = Engine::new(&model, &dev).generate(&input, &opts).unwrap();
        assert_eq!(cached.tokens, want, "{name}/{case}: cached greedy tokens");
        for (a, b) in cached.logprobs.iter().zip(&lps) {
            assert!((a - b).abs() <= 1e-4, "{name}/{case}: cached log-prob {a} vs uncached {b}");
        }
        for (g, w) in lps.iter().zip(entry["greedy_logprobs"].as_array().unwrap()) {
            assert!((*g as f64 - w.as_f64().unwrap()).abs() <= 1e-3, "{name}/{case}: log-prob {g} vs {w}");
        }
    }
}

/// Chat template, tokenizer and image processor against the processor's outputs: same prompt text, same ids,
/// same pixel values (max abs diff <= 1e-6) and grids.
fn check_preprocessing(name: &str) {
    let dir = fixture(name);
    let r = Reference::load(&dir);
    let tok = ChatTokenizer::load(&dir).unwrap();
    let proc = ProcessorConfig::load(&dir).unwrap();
    for (case, entry) in r.meta["cases"].as_object().unwrap() {
        let messages: Vec<Message> = entry["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message {
                role: serde_json::from_value::<Role>(m["role"].clone()).unwrap(),
                content: m["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| match c["type"].as_str().unwrap() {
                        "image" => Part::Image(String::new()),
                        _ => Part::Text(c["text"].as_str().unwrap().into()),
                    })
                    .collect(),
            })
            .collect();
        let prompt = tok.render(&messages, true).unwrap();
        assert_eq!(prompt, entry["prompt"].as_str().unwrap(), "{name}/{case}: chat template");
        let images: Vec<_> = entry["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| proc.process_file(&dir.join(f.as_str().unwrap())).unwrap())
            .collect();
        let pads: Vec<usize> = images.iter().map(|i| i.tokens(2)).collect();
        let ids = tok.encode_with_images(&prompt, &pads).unwrap();
        let want = r.input(case);
        assert_eq!(ids, want.ids, "{name}/{case}: input ids");
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid).collect();
        assert_eq!(grids, want.grids, "{name}/{case}: image grids");
        let pixels: Vec<f32> = images.iter().flat_map(|i| i.patches.iter().copied()).collect();
        let want_px: Vec<f64> = want.pixels.iter().map(|&x| x as f64).collect();
        let d = max_diff(&pixels, &want_px);
        assert!(d <= 1e-6, "{name}/{case}: pixel values differ by {d}");
    }
}

#[test]
fn preprocessing_matches_the_transformers_processor() {
    for name in ["qwen2_vl", "qwen2_vl_flat", "qwen2_5_vl", "qwen2_5_vl_b"] {
        check_preprocessing(name);
    }
}

/// The same models saved by transformers 5.25 (`rope_parameters`, `processor_config.json` with `size`).
const TRANSFORMERS_5: [&str; 3] = ["tf5/qwen2_vl", "tf5/qwen2_vl_flat", "tf5/qwen2_5_vl"];

#[test]
fn transformers_5_checkpoints_preprocess_and_run_as_transformers_5_does() {
    for name in TRANSFORMERS_5 {
        check_preprocessing(name);
        check(name);
    }
}

#[test]
fn qwen2_vl_nested_config_f32() {
    check("qwen2_vl");
}

#[test]
fn qwen2_vl_flat_config_bf16_weights() {
    check("qwen2_vl_flat");
}

#[test]
fn qwen2_5_vl_window_attention_f32() {
    check("qwen2_5_vl");
}

#[test]
fn qwen2_5_vl_other_heads_bf16_weights() {
    check("qwen2_5_vl_b");
}

#[test]
fn chat_template_with_system_message_and_interleaved_images() {
    let tok = ChatTokenizer::load(&fixture("qwen2_vl")).unwrap();
    let image = || Part::Image("x.png".into());
    let msgs = [
        Message::system("Be brief."),
        Message { role: Role::User, content: vec![Part::Text("1.".into()), image(), Part::Text("2.".into()), image()] },
    ];
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1.<|vision_start|><|image_pad|><|vision_end|>2.<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(tok.render(&msgs, true).unwrap(), want);
    assert!(!tok.render(&msgs, false).unwrap().ends_with("assistant\n"));
    let ids = tok.encode_with_images(want, &[2, 3]).unwrap();
    let pad = tok.encode("<|image_pad|>").unwrap()[0];
    assert_eq!(ids.iter().filter(|&&i| i == pad).count(), 5);
    assert!(tok.encode_with_images(want, &[2]).is_err());
    // The end of an assistant turn comes from the template alone.
    assert_eq!(tok.end_of_turn().unwrap(), "<|im_end|>");
}
