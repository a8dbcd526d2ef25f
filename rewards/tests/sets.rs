//! Reward sets: dispatch by method, weights, ablations ("drop" and "zero"), TOML configs.

use repic_rewards::{AblationMode, GroundTruth, Method, RewardConfig, RewardError, RewardSet, Sample};

fn cfg(toml_text: &str) -> RewardConfig {
    toml::from_str(toml_text).expect("valid reward config")
}

fn long_caption(names: &str) -> String {
    format!("In this picture {names} are standing together on a sunny beach, looking at the sea and smiling happily.")
}

#[test]
fn full_set_dispatches_by_method() {
    let set = RewardSet::from_config(&RewardConfig::default()).unwrap();
    assert_eq!(set.names(), ["oct", "vlt", "ict", "ict_multi"]);
    let yes = GroundTruth::Text("yes".into());
    let s = set.score("Yes.", &Sample::new(Method::YesNo, &yes)).unwrap();
    assert_eq!(s.per_fn, [Some(1.0), None, None, None]);
    assert_eq!(s.total, 1.0);
    let names = GroundTruth::Names(vec!["<a>".into(), "<b>".into(), "<c>".into()]);
    let s = set.score(&long_caption("<a> and <b>"), &Sample::new(Method::YesNoNameMulti, &names)).unwrap();
    assert!((s.total - 2.0 / 3.0).abs() < 1e-6);
    // Preference records have no function in the RePIC set: an error, not a silent zero.
    let a = GroundTruth::Text("Image A".into());
    assert!(matches!(set.score("x", &Sample::new(Method::Preference, &a)), Err(RewardError::NoRewardFor(_))));
}

#[test]
fn weights_and_extra_format_reward() {
    let c = cfg(r#"
        set = "full"
        extra = ["format"]
        [weights]
        vlt = 2.0
        format = 0.5
        [format]
        pattern = '.*\[\d+, \d+, \d+, \d+\].*'
    "#);
    let set = RewardSet::from_config(&c).unwrap();
    let b = GroundTruth::Box(vec![10, 10, 110, 110]);
    let s = set.score("box: [10, 10, 110, 110]", &Sample::new(Method::Iou, &b)).unwrap();
    assert_eq!(s.per_fn, [None, Some(1.0), None, None, Some(1.0)]);
    assert_eq!(s.total, 2.5);
}

#[test]
fn ablation_drop_removes_records_zero_keeps_them_with_zero_weight() {
    let drop = RewardSet::from_config(&cfg("set = \"no_oct\"")).unwrap();
    assert!(!drop.keeps(Method::YesNo));
    assert!(drop.keeps(Method::Iou));
    let zero = RewardSet::from_config(&cfg("set = \"no_oct\"\nablation = \"zero\"")).unwrap();
    assert!(zero.keeps(Method::YesNo));
    assert_eq!(zero.weights(), [0.0, 1.0, 1.0, 1.0]);
    let yes = GroundTruth::Text("yes".into());
    let s = zero.score("yes", &Sample::new(Method::YesNo, &yes)).unwrap();
    assert_eq!((s.total, s.per_fn[0]), (0.0, Some(1.0)));
    let only = RewardSet::from_config(&cfg("set = \"only_ict\"")).unwrap();
    assert!(!only.keeps(Method::YesNo) && !only.keeps(Method::Iou));
    assert!(only.keeps(Method::YesNoName) && only.keeps(Method::YesNoNameMulti));
    let no_ict = RewardSet::from_config(&cfg("set = \"no_ict\"")).unwrap();
    assert!(!no_ict.keeps(Method::YesNoName) && !no_ict.keeps(Method::YesNoNameMulti));
    assert_eq!(RewardConfig::default().ablation, AblationMode::Drop);
}

#[test]
fn no_length_gate_set_scores_short_captions() {
    let gt = GroundTruth::Text("<bo>".into());
    let full = RewardSet::from_config(&RewardConfig::default()).unwrap();
    let nogate = RewardSet::from_config(&cfg("set = \"no_length_gate\"")).unwrap();
    let sample = Sample::new(Method::YesNoName, &gt);
    assert_eq!(full.score("This is <bo>.", &sample).unwrap().total, 0.0);
    assert_eq!(nogate.score("This is <bo>.", &sample).unwrap().total, 1.0);
}

#[test]
fn preferthinker_set() {
    let set = RewardSet::from_config(&cfg("set = \"preferthinker\"")).unwrap();
    let gt = GroundTruth::Text("Image B".into());
    let c = "<visual preference profile>a</visual preference profile><visual non-preference profile>b</visual non-preference profile><think>c</think><answer>Image B</answer>";
    let s = set.score(c, &Sample::new(Method::Preference, &gt)).unwrap();
    assert!((s.total - 1.3).abs() < 1e-6);
}

#[test]
fn config_errors_are_clear() {
    let err = |t: &str| match RewardSet::from_config(&cfg(t)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error for {t}"),
    };
    assert!(err("set = \"nope\"").contains("unknown reward set `nope`"));
    assert!(err("extra = [\"bogus\"]").contains("unknown reward function `bogus`"));
    assert!(err("extra = [\"format\"]").contains("[rewards.format]"));
    assert!(err("[weights]\nprefer_format = 1.0").contains("not in the set"));
    assert!(err("extra = [\"format\"]\n[format]\npattern = \"(\"").contains("pattern"));
    let unknown: Result<RewardConfig, _> = toml::from_str("sett = \"full\"");
    assert!(unknown.unwrap_err().to_string().contains("unknown field `sett`"));
    let unknown_opt: Result<RewardConfig, _> = toml::from_str("[vlt]\nthreshhold = 0.5");
    assert!(unknown_opt.is_err());
}

#[test]
fn missing_context_is_an_error() {
    let set = RewardSet::from_config(&cfg("[vlt]\ncoords = \"norm1000\"\n[ict]\nlength_unit = \"tokens\"")).unwrap();
    let b = GroundTruth::Box(vec![1, 1, 5, 5]);
    let e = set.score("[1,1,5,5]", &Sample::new(Method::Iou, &b)).unwrap_err();
    assert!(e.to_string().contains("image size"), "{e}");
    let with = Sample { image_size: Some((1000, 1000)), ..Sample::new(Method::Iou, &b) };
    assert_eq!(set.score("[1,1,5,5]", &with).unwrap().total, 1.0);
    let n = GroundTruth::Text("<a>".into());
    assert!(set.score("<a>", &Sample::new(Method::YesNoName, &n)).is_err());
    let wrong = GroundTruth::Names(vec!["<a>".into()]);
    assert!(matches!(set.score("<a>", &Sample::new(Method::YesNo, &wrong)), Err(RewardError::SolutionType { .. })));
}
