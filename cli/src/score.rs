//! `repic score`: caption precision / recall / F1 of a result file.

use std::path::PathBuf;

use anyhow::Context;
use repic_data::{ConceptDb, load_caption_results};
use repic_eval::{CaseRule, Scorer, score_captions};

/// Which scorer `--scorer` selects.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ScorerArg {
    /// RePIC's released rules (whitespace tokens equal to `<key>` or `key`).
    Official,
    /// Keys or display names as word-bounded substrings (handles multi-word keys and "Iron Man").
    NameAware,
}

/// Arguments of `repic score`.
#[derive(clap::Args)]
pub struct Args {
    /// Result file: a JSON list of [image, [ground-truth keys], caption, question].
    file: PathBuf,
    /// Scorer to use.
    #[arg(long, value_enum, default_value = "official")]
    scorer: ScorerArg,
    /// Compare case-sensitively. Default: RePIC's per-split rule for the official scorer (case-sensitive when
    /// every query has exactly 2 concepts, lower-cased otherwise); lower-cased for the name-aware scorer.
    #[arg(long, conflicts_with = "lowercase")]
    case_sensitive: bool,
    /// Lower-case captions and keys, whatever the split.
    #[arg(long)]
    lowercase: bool,
    /// A RAP database.json whose display names the name-aware scorer also accepts.
    #[arg(long)]
    database: Option<PathBuf>,
    /// Print `{"precision", "recall", "f1", "slots"}` as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Run `repic score`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let results = load_caption_results(&a.file).context("reading the result file")?;
    anyhow::ensure!(!results.is_empty(), "{}: no caption results to score (an empty list)", a.file.display());
    let scorer = match a.scorer {
        ScorerArg::Official => Scorer::Official,
        ScorerArg::NameAware => Scorer::NameAware,
    };
    if a.database.is_some() && matches!(scorer, Scorer::Official) {
        anyhow::bail!("--database only applies to --scorer name-aware (the official scorer ignores display names)");
    }
    let db = a.database.as_deref().map(ConceptDb::load).transpose().context("reading the database")?;
    let case = match (a.case_sensitive, a.lowercase) {
        (true, _) => CaseRule::Sensitive,
        (_, true) => CaseRule::Insensitive,
        _ => CaseRule::Auto,
    };
    let sensitive = case.is_sensitive(&results, scorer);
    tracing::info!(queries = results.len(), case_sensitive = sensitive, "scoring {}", a.file.display());
    let s = score_captions(&results, scorer, case, db.as_ref());
    let (p, r, f1) = s.rounded();
    if a.json {
        println!("{}", serde_json::json!({"precision": p, "recall": r, "f1": f1, "slots": s.slots}));
    } else {
        println!(
            "precision {p:.1}  recall {r:.1}  F1 {f1:.1}  ({} slots, {} correct, {} predicted)",
            s.slots, s.correct, s.predicted
        );
    }
    Ok(())
}
