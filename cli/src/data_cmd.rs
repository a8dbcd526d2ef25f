//! `repic data check|convert`: validate RePIC record files and convert between JSON array and JSONL.

use std::collections::BTreeMap;
use std::path::PathBuf;

use repic_data::{RecordFormat, load_records, save_records};

/// Record file tools.
#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Validate record files and count records per reward method; the first bad record is reported by file,
    /// line and field.
    Check {
        /// Record files (JSON array or JSONL).
        files: Vec<PathBuf>,
        /// Also check that every image the records name exists under this folder and is a readable image
        /// (what `repic train` checks before its first step).
        #[arg(long)]
        image_root: Option<PathBuf>,
    },
    /// Convert a record file; the output's extension picks the format (`.jsonl` or JSON array). The output is
    /// written atomically and only if every input record is valid.
    Convert {
        /// Input record file.
        input: PathBuf,
        /// Output record file.
        output: PathBuf,
    },
}

/// Run a `repic data` subcommand.
pub fn run(c: DataCommand) -> anyhow::Result<()> {
    match c {
        DataCommand::Check { files, image_root } => {
            anyhow::ensure!(!files.is_empty(), "name at least one record file");
            for f in files {
                let records = load_records(&f)?;
                if let Some(root) = &image_root {
                    repic_data::check_images(&records, root, &f)?;
                }
                let mut by_method = BTreeMap::new();
                for r in &records {
                    *by_method.entry(r.method.as_str()).or_insert(0usize) += 1;
                }
                let parts: Vec<String> = by_method.iter().map(|(m, n)| format!("{m} {n}")).collect();
                println!("{}: {} records ({})", f.display(), records.len(), parts.join(", "));
            }
        }
        DataCommand::Convert { input, output } => {
            let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            anyhow::ensure!(parent.is_dir(), "{}: the folder {} does not exist", output.display(), parent.display());
            let records = load_records(&input)?;
            save_records(&output, &records, RecordFormat::from_path(&output))?;
            println!("{}: {} records", output.display(), records.len());
        }
    }
    Ok(())
}
