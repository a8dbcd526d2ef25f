//! Resolving `--model` / `--adapter`: model folders, PEFT folders (base from `adapter_config.json`), a run's
//! checkpoints (full model or adapter on the run's model) and run folders (newest checkpoint); clear errors.

mod common;

use std::path::Path;

use common::{B, fixture};
use repic_trainer::ModelSource;

fn models() -> std::path::PathBuf {
    fixture().parent().unwrap().to_path_buf()
}

#[test]
fn every_kind_of_folder_resolves_to_a_base_and_an_adapter() {
    let plain = fixture();
    assert_eq!(ModelSource::resolve(&plain, None).unwrap(), ModelSource { base: plain.clone(), adapter: None });
    // A PEFT folder whose base_model_name_or_path is relative to the project root.
    let lora = models().join("qwen2_5_vl/lora");
    let s = ModelSource::resolve(&lora, None).unwrap();
    assert_eq!(s.adapter.as_deref(), Some(lora.as_path()));
    assert_eq!(s.base.canonicalize().unwrap(), models().join("qwen2_5_vl").canonicalize().unwrap());
    s.load::<B>(&Default::default()).unwrap();
    // An explicit adapter on a plain model; a second adapter on an adapter is refused.
    let base = models().join("qwen2_5_vl");
    let s = ModelSource::resolve(&base, Some(&lora)).unwrap();
    assert_eq!((s.base.as_path(), s.adapter.as_deref()), (base.as_path(), Some(lora.as_path())));
    let e = ModelSource::resolve(&lora, Some(&lora)).unwrap_err().to_string();
    assert!(e.contains("already holds an adapter"), "{e}");
    let e = ModelSource::resolve(&base, Some(&base)).unwrap_err().to_string();
    assert!(e.contains("not a PEFT adapter folder"), "{e}");

    // A run: checkpoint-1 with an adapter (base = the run's model), checkpoint-2 with a full model.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let ck1 = run.join("checkpoint-1");
    copy(&lora, &ck1.join("adapter"));
    std::fs::write(ck1.join("trainer_state.json"), "{}").unwrap();
    let toml = format!("model = {:?}\noutput_dir = \"x\"\n[data]\ntrain = \"t.jsonl\"\n", base.to_string_lossy());
    std::fs::write(ck1.join("config.toml"), toml).unwrap();
    let s = ModelSource::resolve(&run, None).unwrap();
    assert_eq!((s.base.as_path(), s.adapter), (base.as_path(), Some(ck1.join("adapter"))));
    let ck2 = run.join("checkpoint-2");
    copy(&plain, &ck2.join("model"));
    std::fs::write(ck2.join("trainer_state.json"), "{}").unwrap();
    assert_eq!(ModelSource::resolve(&run, None).unwrap(), ModelSource { base: ck2.join("model"), adapter: None });
    // Nothing to run.
    let e = ModelSource::resolve(tmp.path(), None).unwrap_err().to_string();
    assert!(e.contains("is not a model folder"), "{e}");
    // An adapter whose base is nowhere here.
    let orphan = tmp.path().join("orphan");
    copy(&lora, &orphan);
    let cfg = std::fs::read_to_string(orphan.join("adapter_config.json")).unwrap();
    std::fs::write(orphan.join("adapter_config.json"), cfg.replace("models/tests/fixtures/qwen2_5_vl", "org/gone"))
        .unwrap();
    let e = ModelSource::resolve(&orphan, None).unwrap_err().to_string();
    assert!(e.contains("`org/gone` is not a model folder here") && e.contains("--model BASE --adapter"), "{e}");
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
