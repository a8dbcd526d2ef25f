//! `repic compare BEFORE AFTER`: two models' answers to the same records (`repic eval --out` files), per task:
//! accuracy before and after, the answers the second fixed and broke, and the exact McNemar p of that split.

use std::path::PathBuf;

use repic_eval::paired::{compare_verdicts, read_answer_verdicts};

/// Arguments of `repic compare`.
#[derive(clap::Args)]
pub struct Args {
    /// Answers of the first model (`repic eval --out`).
    before: PathBuf,
    /// Answers of the second model to the same records, seed and options.
    after: PathBuf,
    /// Print the comparison as JSON (task -> {before, after, change: {items, fixed, broken, p_value}}).
    #[arg(long)]
    json: bool,
}

/// Run `repic compare`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let before = read_answer_verdicts(&a.before)?;
    let after = read_answer_verdicts(&a.after)?;
    let c = compare_verdicts(&before, &after)
        .map_err(|e| anyhow::anyhow!("{} vs {}: {e}", a.before.display(), a.after.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    println!(
        "{:<18} {:>7} {:>8} {:>7} {:>6} {:>7} {:>10}",
        "task", "records", "before %", "after %", "fixed", "broken", "McNemar p"
    );
    for (task, t) in &c {
        let x = &t.change;
        println!(
            "{task:<18} {:>7} {:>8.1} {:>7.1} {:>6} {:>7} {:>10.2e}",
            x.items, t.before, t.after, x.fixed, x.broken, x.p_value
        );
    }
    Ok(())
}
