//! `repic prefer`: PreferThinker's personalized preference assessment of two candidate images.

use std::path::PathBuf;

use repic_models::default_device as device;
use repic_personalize::prefer::assess;

/// `repic prefer`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
    /// An image the user prefers (repeat, up to 5).
    #[arg(long = "preferred")]
    preferred: Vec<PathBuf>,
    /// An image the user does not prefer (repeat, up to 5).
    #[arg(long = "non-preferred")]
    non_preferred: Vec<PathBuf>,
    /// Candidate Image A.
    #[arg(long)]
    a: PathBuf,
    /// Candidate Image B.
    #[arg(long)]
    b: PathBuf,
    /// Most tokens of the answer.
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    /// Print `{"text", "assessment", "malformed"}` as JSON.
    #[arg(long)]
    json: bool,
}

/// Run `repic prefer`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let ckpt = a.model.load()?;
    let r = assess(&ckpt, &a.preferred, &a.non_preferred, &a.a, &a.b, a.max_new_tokens, &device())?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    match (&r.assessment, &r.malformed) {
        (Some(x), _) => {
            println!("{}", x.choice);
            eprintln!("Image A total {} / Image B total {}", x.a.total, x.b.total);
        }
        (None, Some(why)) => {
            println!("{}", r.text);
            anyhow::bail!("the answer is malformed: {why}");
        }
        (None, None) => unreachable!("an assessment is either parsed or malformed"),
    }
    Ok(())
}
