//! Every shipped config's `[rewards]` section parses (unknown keys are errors) and builds its reward set.

use std::path::PathBuf;

use repic_rewards::{RewardConfig, RewardSet};

fn toml_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn shipped_reward_configs_build() {
    let mut files = Vec::new();
    toml_files(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs"), &mut files);
    files.sort();
    let mut built = 0;
    for f in &files {
        let table: toml::Table = toml::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let Some(section) = table.get("rewards") else { continue };
        let cfg: RewardConfig = section.clone().try_into().unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        RewardSet::from_config(&cfg).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let stem = f.file_stem().unwrap().to_string_lossy();
        if f.parent().is_some_and(|p| p.ends_with("ablations")) {
            assert_eq!(cfg.set, stem, "{}: an ablation file is named after its set", f.display());
        }
        built += 1;
    }
    assert!(built >= 7, "found {built} reward configs in {files:?}");
}
