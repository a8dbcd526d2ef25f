//! `repic plot`: redraw a run's `training.png` from its `metrics.jsonl`.

use std::path::PathBuf;

/// Arguments of `repic plot`.
#[derive(clap::Args)]
pub struct Args {
    /// A run's output folder (with metrics.jsonl).
    run: PathBuf,
    /// Where to write the PNG (default: RUN/training.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Run `repic plot`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let out = a.out.unwrap_or_else(|| a.run.join("training.png"));
    repic_trainer::plot::plot_run(&a.run.join("metrics.jsonl"), &out)?;
    println!("{}", out.display());
    Ok(())
}
