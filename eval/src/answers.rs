//! The one definition of a correct answer that every repic evaluation uses (`repic eval`, the demo, ablations),
//! and accuracies built on it.

use repic_data::Record;
use repic_rewards::{
    GroundTruth, IctOptions, Method, OctOptions, VltOptions, ict_multi_reward, ict_reward, oct_reward,
    prefer_accuracy_reward, vlt_reward,
};

/// Whether `completion` answers `record` correctly; `size` is the query image's size as the model saw it (the
/// frame of box coordinates). The rules: OCT (`yes_no`): the first yes/no at a word boundary equals the
/// solution ("I know" is neither, so wrong); VLT (`iou`): the first box has IoU >= 0.5 with the solution
/// (RePIC's IoU, absolute pixels of the model's input); ICT (`yes_no_name`): the name is in the answer (exact,
/// its closing tag absent); multi-concept ICT: every name is in it; preference: the last `<answer>` equals the
/// solution. Length gates of the training rewards do not apply. `None` when the solution does not fit the
/// method.
pub fn answer_correct(record: &Record, completion: &str, size: Option<(u32, u32)>) -> Option<bool> {
    let no_gate = IctOptions { min_len: 0, ..IctOptions::default() };
    match (record.method, &record.solution) {
        (Method::YesNo, GroundTruth::Text(s)) => {
            Some(oct_reward(completion, s, &OctOptions { word_boundary: true }) == 1.0)
        }
        (Method::Iou, GroundTruth::Box(b)) => {
            Some(vlt_reward(completion, b, size, &VltOptions::default()) == Some(1.0))
        }
        (Method::YesNoName, GroundTruth::Text(name)) => Some(ict_reward(completion, name, None, &no_gate) == Some(1.0)),
        (Method::YesNoNameMulti, GroundTruth::Names(names)) => {
            Some(!names.is_empty() && ict_multi_reward(completion, names, None, &no_gate) == Some(1.0))
        }
        (Method::Preference, GroundTruth::Text(s)) => Some(prefer_accuracy_reward(completion, s) == 1.0),
        _ => None,
    }
}

/// The IoU of a VLT answer's first box with the record's box (0 without a box; the same parsing and frame as
/// the VLT rule), or `None` for records of other tasks.
pub fn vlt_iou(record: &Record, completion: &str, size: Option<(u32, u32)>) -> Option<f64> {
    let continuous = VltOptions { continuous: true, ..VltOptions::default() };
    match (record.method, &record.solution) {
        (Method::Iou, GroundTruth::Box(b)) => {
            Some(f64::from(vlt_reward(completion, b, size, &continuous).unwrap_or(0.0)))
        }
        _ => None,
    }
}

/// Whether each answer is right ([`answer_correct`]; `completions[i]` and `sizes[i]` belong to `records[i]`):
/// the per-record view that accuracies and paired comparisons of two models are built on.
pub fn record_correct(records: &[Record], completions: &[String], sizes: &[Option<(u32, u32)>]) -> Vec<Option<bool>> {
    records.iter().zip(completions).zip(sizes).map(|((r, text), size)| answer_correct(r, text, *size)).collect()
}

/// Accuracy of one task: correct answers and how many were judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Correct answers.
    pub correct: usize,
    /// Records of the task.
    pub total: usize,
}

impl Accuracy {
    /// Share correct in percent (0 when there were none).
    pub fn percent(&self) -> f64 {
        if self.total == 0 { 0.0 } else { 100.0 * self.correct as f64 / self.total as f64 }
    }
}

/// Held-out accuracies of the two tasks with a verifiable short answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct RecordAccuracy {
    /// Object consistency (`yes_no` records).
    pub oct: Accuracy,
    /// Visual localization (`iou` records).
    pub vlt: Accuracy,
}

impl RecordAccuracy {
    /// The accuracies of per-record verdicts from [`record_correct`] (`correct[i]` belongs to `records[i]`).
    pub fn from_correct(records: &[Record], correct: &[Option<bool>]) -> Self {
        let mut acc = RecordAccuracy::default();
        for (r, ok) in records.iter().zip(correct) {
            let task = match r.method {
                Method::YesNo => &mut acc.oct,
                Method::Iou => &mut acc.vlt,
                _ => continue,
            };
            if let Some(ok) = ok {
                task.total += 1;
                task.correct += usize::from(*ok);
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: Method, solution: GroundTruth) -> Record {
        Record { images: vec![], problem: String::new(), solution, method, extra: Default::default() }
    }

    #[test]
    fn one_rule_for_every_task_by_hand() {
        let names = GroundTruth::Names(vec!["<a>".into(), "<b>".into()]);
        let records = [
            rec(Method::YesNo, GroundTruth::Text("yes".into())),
            rec(Method::YesNo, GroundTruth::Text("no".into())),
            rec(Method::YesNo, GroundTruth::Text("no".into())),
            rec(Method::Iou, GroundTruth::Box(vec![0, 0, 10, 10])),
            rec(Method::Iou, GroundTruth::Box(vec![0, 0, 10, 10])),
            rec(Method::YesNoName, GroundTruth::Text("<a>".into())),
            rec(Method::YesNoName, GroundTruth::Text("<a>".into())),
            rec(Method::YesNoNameMulti, names.clone()),
            rec(Method::YesNoNameMulti, names),
            rec(Method::Preference, GroundTruth::Text("Image B".into())),
            rec(Method::Iou, GroundTruth::Text("yes".into())),
        ];
        // "I know" holds no yes/no at a word boundary: wrong, not "no". A short caption naming <a> is right
        // (no length gate); "<a> ... </a>" is not (closing tag).
        let texts = [
            "Yes.",
            "I know",
            "no",
            "[0, 0, 9, 10]",
            "[20, 20, 30, 30]",
            "<a> is here",
            "<a> is </a>",
            "<b> and <a>",
            "only <a>",
            "<answer>Image B</answer>",
            "yes",
        ]
        .map(String::from);
        let each = record_correct(&records, &texts, &[None; 11]);
        let t = Some(true);
        let f = Some(false);
        assert_eq!(each, [t, f, t, t, f, t, f, t, f, t, None]);
        let acc = RecordAccuracy::from_correct(&records, &each);
        assert_eq!(acc.oct, Accuracy { correct: 2, total: 3 });
        assert_eq!(acc.vlt, Accuracy { correct: 1, total: 2 });
        assert!((acc.oct.percent() - 66.666).abs() < 0.01);
        assert_eq!(Accuracy::default().percent(), 0.0);
        // [0, 0, 9, 10] against [0, 0, 10, 10]: 90 / 100 pixels; no box at all: 0; not a VLT record: None.
        assert!((vlt_iou(&records[3], "[0, 0, 9, 10]", None).unwrap() - 0.9).abs() < 1e-6);
        assert_eq!(vlt_iou(&records[4], "no box", None), Some(0.0));
        assert_eq!(vlt_iou(&records[0], "yes", None), None);
    }
}
