//! The record evaluation behind `repic eval`: a checkpoint's answers to RePIC-format records scored with the
//! training rewards (mean of each reward function per task) and judged by the one rule of a correct answer.

use indexmap::IndexMap;
use repic_data::Record;
use repic_rewards::{RewardSet, Sample};
use serde::Serialize;

use crate::EvalError;
use crate::answers::answer_correct;
use crate::runner::Answers;

/// The figures of one task.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TaskSummary {
    /// Records of the task.
    pub records: usize,
    /// Records answered correctly ([`answer_correct`]).
    pub correct: usize,
    /// Mean score per reward function (only functions that apply to the task).
    pub rewards: IndexMap<String, f64>,
}

impl TaskSummary {
    /// Share correct in percent.
    pub fn percent_correct(&self) -> f64 {
        crate::Accuracy { correct: self.correct, total: self.records }.percent()
    }
}

/// One record's answer with its scores (a line of `repic eval --out`).
#[derive(Clone, Debug, Serialize)]
pub struct AnswerRow {
    /// Index of the record.
    pub index: usize,
    /// Its task (`accu_reward_method`).
    pub method: String,
    /// The answer.
    pub completion: String,
    /// Weighted total reward.
    pub reward: f32,
    /// Each reward function's score (`null`: does not apply).
    pub rewards: IndexMap<String, Option<f32>>,
    /// Whether the answer is correct (`null` when the record's solution does not fit its task).
    pub correct: Option<bool>,
}

/// Per-task figures and per-record rows.
#[derive(Clone, Debug, Default)]
pub struct RecordReport {
    /// Tasks in order of first appearance.
    pub tasks: IndexMap<String, TaskSummary>,
    /// One row per record.
    pub rows: Vec<AnswerRow>,
}

/// Score `answers` (one per record, from [`crate::runner::answer_records`]) with `rewards`.
pub fn score_answers(records: &[Record], answers: &Answers, rewards: &RewardSet) -> Result<RecordReport, EvalError> {
    if records.len() != answers.gens.len() || records.len() != answers.sizes.len() {
        return Err(EvalError::Input(format!("{} records but {} answers", records.len(), answers.gens.len())));
    }
    let names = rewards.names();
    let mut report = RecordReport::default();
    for (index, ((r, g), size)) in records.iter().zip(&answers.gens).zip(&answers.sizes).enumerate() {
        let sample = Sample {
            method: r.method,
            solution: &r.solution,
            image_size: *size,
            completion_tokens: Some(g.tokens.len()),
        };
        let score = rewards.score(&g.text, &sample).map_err(|e| EvalError::from(e).of(format!("record {index}")))?;
        let correct = answer_correct(r, &g.text, *size);
        let t = report.tasks.entry(r.method.to_string()).or_default();
        t.records += 1;
        t.correct += usize::from(correct == Some(true));
        for (name, s) in names.iter().zip(&score.per_fn) {
            if let Some(s) = s {
                *t.rewards.entry((*name).to_string()).or_default() += f64::from(*s);
            }
        }
        report.rows.push(AnswerRow {
            index,
            method: r.method.to_string(),
            completion: g.text.clone(),
            reward: score.total,
            rewards: names.iter().map(|n| n.to_string()).zip(score.per_fn.iter().copied()).collect(),
            correct,
        });
    }
    for t in report.tasks.values_mut() {
        t.rewards.values_mut().for_each(|v| *v /= t.records as f64);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use repic_models::Generation;
    use repic_rewards::{GroundTruth, Method, RewardConfig};

    #[test]
    fn tasks_are_summarised_by_hand() {
        let rec = |method, solution| Record {
            images: vec![],
            problem: String::new(),
            solution,
            method,
            extra: Default::default(),
        };
        let records = [
            rec(Method::YesNo, GroundTruth::Text("yes".into())),
            rec(Method::YesNo, GroundTruth::Text("no".into())),
            rec(Method::Iou, GroundTruth::Box(vec![0, 0, 10, 10])),
        ];
        let answer = |text: &str| Generation { tokens: vec![1; 3], text: text.into(), ..Default::default() };
        let answers =
            Answers { gens: vec![answer("yes"), answer("yes"), answer("[0, 0, 10, 10]")], sizes: vec![None; 3] };
        let set = RewardSet::from_config(&RewardConfig::default()).unwrap();
        let report = score_answers(&records, &answers, &set).unwrap();
        let oct = &report.tasks["yes_no"];
        assert_eq!((oct.records, oct.correct), (2, 1));
        assert_eq!(oct.rewards["oct"], 0.5);
        assert_eq!(oct.percent_correct(), 50.0);
        assert_eq!(report.tasks["iou"].correct, 1);
        assert_eq!(report.rows[1].correct, Some(false));
        assert_eq!(report.rows[2].rewards["vlt"], Some(1.0));
        let short = Answers { gens: vec![answer("yes")], sizes: vec![None] };
        assert!(score_answers(&records, &short, &set).is_err());
    }
}
