//! Property test: arbitrary completions and ground truths never panic and always score in [0, 1].

use proptest::prelude::*;
use repic_rewards::{
    GroundTruth, IctOptions, LengthUnit, Method, OctOptions, RewardConfig, RewardSet, Sample, VltAnchor, VltCoords,
    VltOptions, ict_multi_reward, ict_reward, oct_reward, prefer_accuracy_reward, prefer_format_reward, vlt_reward,
};

fn in_unit(v: f32) -> bool {
    (0.0..=1.0).contains(&v)
}

fn completion() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ <>/a-z0-9\\[\\],.yesno]{0,300}",
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(a, b, c, d)| format!("[{a}, {b}, {c}, {d}]")),
        "[0-9]{1,40}".prop_map(|d| format!("\"bbox_2d\": [{d}, 1, {d}, 2]")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pure_rewards_stay_in_unit_interval(
        text in completion(),
        sol in any::<String>(),
        names in proptest::collection::vec(any::<String>(), 0..4),
        boxv in proptest::collection::vec(any::<i64>(), 0..6),
        size in (1u32..5000, 1u32..5000),
        tokens in 0usize..400,
        min_len in 0usize..300,
        wb in any::<bool>(),
        cont in any::<bool>(),
        norm in any::<bool>(),
        anchor in any::<bool>(),
        closing in any::<bool>(),
    ) {
        let oct = OctOptions { word_boundary: wb };
        prop_assert!(in_unit(oct_reward(&text, &sol, &oct)));
        let v = VltOptions {
            continuous: cont,
            coords: if norm { VltCoords::Norm1000 } else { VltCoords::Absolute },
            anchor: if anchor { VltAnchor::Bbox2d } else { VltAnchor::None },
            ..VltOptions::default()
        };
        prop_assert!(in_unit(vlt_reward(&text, &boxv, Some(size), &v).unwrap()));
        for unit in [LengthUnit::Chars, LengthUnit::Tokens] {
            let o = IctOptions { min_len, length_unit: unit, closing_tag_rule_multi: closing };
            prop_assert!(in_unit(ict_reward(&text, &sol, Some(tokens), &o).unwrap()));
            prop_assert!(in_unit(ict_multi_reward(&text, &names, Some(tokens), &o).unwrap()));
        }
        prop_assert!(in_unit(prefer_accuracy_reward(&text, &sol)));
        prop_assert!((0.0..=0.3).contains(&prefer_format_reward(&text)));
    }

    #[test]
    fn reward_set_total_is_bounded(text in completion(), sol in any::<String>(), boxv in proptest::collection::vec(0i64..2000, 4)) {
        let set = RewardSet::from_config(&RewardConfig::default()).unwrap();
        let gts = [
            (Method::YesNo, GroundTruth::Text(sol.clone())),
            (Method::Iou, GroundTruth::Box(boxv)),
            (Method::YesNoName, GroundTruth::Text(sol.clone())),
            (Method::YesNoNameMulti, GroundTruth::Names(vec![sol.clone(), "<x>".into()])),
        ];
        for (m, gt) in &gts {
            let s = set.score(&text, &Sample::new(*m, gt)).unwrap();
            prop_assert!(in_unit(s.total));
            prop_assert_eq!(s.per_fn.iter().flatten().count(), 1);
        }
    }
}
