//! `repic ablate`: reward ablations as one command, at the demo's scale. For each seed it makes the demo's data
//! and SFT warm start once (shared by every variant), then for each variant (a TOML file of config overrides,
//! e.g. `configs/ablations/*.toml`) trains GRPO from that warm start with the base config plus the variant, and
//! evaluates the result on the seed's held-out data with the evaluation library. Each finished or failed run is
//! one line of `results.jsonl`, written atomically; a rerun skips finished runs, restarts a killed one from its
//! last checkpoint, and reports a failed one as failed while the others go on. The report: `table.md`,
//! `table.csv` (mean ± std over seeds, paired differences to the baseline with McNemar p) and one bar chart per
//! metric (`plots/<metric>.png`). With `--top-k K` the captions are evaluated with retrieved references (a
//! retrieval encoder and concept store made once per seed, as the demo makes them) instead of the queries' own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::backend::Autodiff;
use burn::tensor::backend::Backend as _;
use repic_eval::ablation::{RunResult, read_results, record_result, report};
use repic_eval::held_out::{CaptionReferences, evaluate_held_out_with};
use repic_models::{DefaultBackend as Backend, default_device};
use repic_trainer::TrainConfig;

use crate::demo::personalize::retrieval_setup;
use crate::demo::{DEMO_TOML, Plan, path_value, reused_sft, warm_start};
use crate::machine::Machine;
use crate::train::StepBar;

/// Arguments of `repic ablate`.
#[derive(clap::Args)]
pub struct Args {
    /// Variants: TOML files of config overrides, or folders of them (each file's stem names its variant).
    #[arg(long, required = true, num_args = 1..)]
    variants: Vec<PathBuf>,
    /// The GRPO config every variant starts from (default: configs/demo.toml, as built in).
    #[arg(long)]
    base: Option<PathBuf>,
    /// Seeds 0..N (data, warm start and training).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// The variant differences are reported against.
    #[arg(long, default_value = "full")]
    baseline: String,
    /// Output folder: per seed its warm start and runs, then results.jsonl, table.md, table.csv, plots/.
    #[arg(long, default_value = "repic-ablate")]
    out: PathBuf,
    /// The demo's --quick sizes (a few records, 4 GRPO steps): checks the pipeline, its figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// GRPO steps per run (default: the demo's, 400; 4 with --quick).
    #[arg(long)]
    grpo_steps: Option<usize>,
    /// Evaluate captioning with references retrieved from a concept store (at least K per query; a query of n
    /// concepts gets n when n > K) instead of each query's own concepts (RePIC's skip-retrieval).
    #[arg(long)]
    top_k: Option<usize>,
    /// Runs at a time, each its own process (warm starts are made first, one seed at a time).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// GPUs to run on, one run per device at a time (`--devices 0,1,2,3`: each run process sees only its GPU
    /// through CUDA_VISIBLE_DEVICES); warm starts run first on the first one. Needs a CUDA build.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "jobs")]
    devices: Vec<usize>,
    /// Only this seed (of 0..--seeds): one shard of a sweep, e.g. one task of a cluster job array.
    #[arg(long)]
    only_seed: Option<u64>,
    /// Only make the warm starts of the seeds (and, with --top-k, their retrieval setups), then stop.
    #[arg(long)]
    warm_only: bool,
    /// Only write the report (table.md, table.csv, plots/) from the results recorded so far.
    #[arg(long)]
    report_only: bool,
    /// Only run number I of the sweep (seed I / variants, variant I % variants, variants in listed order) on its
    /// seed's existing warm start: one task of the Slurm run array.
    #[arg(long, value_name = "I")]
    task: Option<usize>,
    /// Write Slurm jobs instead of running: `OUT/slurm/warm.sbatch` (one task per seed), `runs.sbatch` (one task
    /// per run, after the warm starts), `report.sbatch` (after the runs) and `submit.sh`, which submits the three
    /// with their dependencies.
    #[arg(long)]
    slurm: bool,
    /// Internal: a run process started by --jobs (no report, no folder lock, the warm start must exist).
    #[arg(long, hide = true)]
    worker: bool,
}

/// A variant: its file, its name and its overrides as `key.path=value` strings.
struct Variant {
    file: PathBuf,
    name: String,
    overrides: Vec<String>,
}

/// The variants named by files and folders, sorted by name within a folder; names must be unique.
fn variants(paths: &[PathBuf]) -> anyhow::Result<Vec<Variant>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "toml"))
                .collect();
            inside.sort();
            anyhow::ensure!(!inside.is_empty(), "{}: no .toml variant files", p.display());
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    let mut out: Vec<Variant> = Vec::new();
    for f in files {
        let name = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        anyhow::ensure!(!out.iter().any(|v| v.name == name), "two variants are named `{name}`");
        let src = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let table: toml::Table = toml::from_str(&src).with_context(|| format!("{}", f.display()))?;
        let mut overrides = Vec::new();
        flatten("", &toml::Value::Table(table), &mut overrides);
        out.push(Variant { file: f, name, overrides });
    }
    Ok(out)
}

/// `key.path=value` overrides of every leaf of a TOML value (arrays are leaves).
fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        leaf => out.push(format!("{prefix}={leaf}")),
    }
}

/// A 64-bit FNV-1a hash, hex (which runs share a config).
fn fnv(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

/// Run `repic ablate`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let variants = variants(&a.variants)?;
    anyhow::ensure!(a.seeds >= 1, "--seeds must be at least 1");
    anyhow::ensure!(a.jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(a.top_k != Some(0), "--top-k must be at least 1");
    let seeds: Vec<u64> = match a.only_seed {
        Some(s) => {
            anyhow::ensure!(s < a.seeds, "--only-seed {s} is not below --seeds {}", a.seeds);
            vec![s]
        }
        None => (0..a.seeds).collect(),
    };
    anyhow::ensure!(
        a.devices.is_empty() || repic_models::BACKEND_NAME == "cuda",
        "--devices places runs on GPUs; this build runs on `{}` (build with --features cuda)",
        repic_models::BACKEND_NAME
    );
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    if a.slurm {
        return write_slurm(&a, &variants);
    }
    let results = a.out.join("results.jsonl");
    if a.report_only {
        let runs = read_results(&results)?;
        anyhow::ensure!(!runs.is_empty(), "{}: no results to report yet", results.display());
        return write_report(&a.out, &runs, &a.baseline);
    }
    if let Some(i) = a.task {
        let n = variants.len() * a.seeds as usize;
        anyhow::ensure!(
            i < n,
            "--task {i} is not below the sweep's {n} runs ({} variants x {} seeds)",
            variants.len(),
            a.seeds
        );
        let (v, seed) = (&variants[i % variants.len()], (i / variants.len()) as u64);
        if finished(&read_results(&results)?, v, seed, a.top_k) {
            println!("{} seed {seed}: finished earlier (skipped)", v.name);
            return Ok(());
        }
        return run_variant(&a, v, seed);
    }
    // One lock per seed: shards of different seeds (a job array) run at once; a worker runs inside its parent's
    // sweep, which holds them.
    let mut _locks = Vec::new();
    if !a.worker {
        for &seed in &seeds {
            let lock = a.out.join(format!(".repic-ablate.seed-{seed}.lock"));
            _locks.push(repic_data::lock::FileLock::acquire(&lock, &a.out.join(format!("seed-{seed}")))?);
        }
    }
    let mut pending: Vec<(&Variant, u64)> = Vec::new();
    let done = read_results(&results)?;
    for &seed in &seeds {
        let todo: Vec<&Variant> = variants.iter().filter(|v| !finished(&done, v, seed, a.top_k)).collect();
        if todo.is_empty() {
            println!("seed {seed}: every variant finished earlier (skipped)");
        }
        pending.extend(todo.into_iter().map(|v| (v, seed)));
    }
    // Warm starts first, one seed at a time (each uses every core); the runs then share them.
    let mut pending_seeds: Vec<u64> = pending.iter().map(|(_, s)| *s).collect();
    pending_seeds.dedup();
    if a.warm_only {
        pending_seeds = seeds.clone();
    }
    for &seed in &pending_seeds {
        warm_started(&a, seed)?;
    }
    if a.warm_only {
        println!("warm starts ready: seeds {seeds:?}");
        return Ok(());
    }
    if !a.devices.is_empty() {
        run_parallel(&a, &pending, a.devices.iter().map(|&d| Some(d)).collect())?;
    } else if a.jobs > 1 && pending.len() > 1 {
        run_parallel(&a, &pending, vec![None; a.jobs])?;
    } else {
        for (v, seed) in &pending {
            run_variant(&a, v, *seed)?;
        }
    }
    if a.worker {
        return Ok(());
    }
    write_report(&a.out, &read_results(&results)?, &a.baseline)
}

/// The Slurm jobs of this sweep in `OUT/slurm/`: warm starts (one task per seed), runs (one task per variant x
/// seed, after every warm start succeeded), the report (after the runs, whatever their outcome) and `submit.sh`.
fn write_slurm(a: &Args, variants: &[Variant]) -> anyhow::Result<()> {
    let abs = |p: &Path| std::path::absolute(p).with_context(|| format!("{}", p.display()));
    let quote = |p: PathBuf| format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"));
    let exe = std::env::current_exe().context("finding the repic binary")?;
    let out = abs(&a.out)?;
    let mut common = format!("{} ablate --seeds {} --out {}", quote(exe), a.seeds, quote(out.clone()));
    // The variant files one by one, in the order --task numbers them.
    for v in variants {
        common.push_str(&format!(" --variants {}", quote(abs(&v.file)?)));
    }
    if let Some(b) = &a.base {
        common.push_str(&format!(" --base {}", quote(abs(b)?)));
    }
    if a.quick {
        common.push_str(" --quick");
    }
    if let Some(n) = a.grpo_steps {
        common.push_str(&format!(" --grpo-steps {n}"));
    }
    if let Some(k) = a.top_k {
        common.push_str(&format!(" --top-k {k}"));
    }
    common.push_str(&format!(" --baseline '{}'", a.baseline.replace('\'', "")));
    let dir = a.out.join("slurm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let gpu = if repic_models::BACKEND_NAME == "cuda" { "#SBATCH --gres=gpu:1\n" } else { "" };
    let job = |name: &str, array: Option<usize>, args: &str| {
        let array = array.map(|n| format!("#SBATCH --array=0-{}\n", n - 1)).unwrap_or_default();
        let log = if array.is_empty() { "%j" } else { "%A_%a" };
        format!(
            "#!/bin/bash\n# repic ablate, {name} (written by repic ablate --slurm; submit all with submit.sh).\n\
             # Add your partition, time and memory limits below.\n#SBATCH --job-name=repic-ablate-{name}\n{array}{gpu}\
             #SBATCH --output={}/slurm-{name}-{log}.log\nset -euo pipefail\n{common} {args}\n",
            dir.display()
        )
    };
    let runs = variants.len() * a.seeds as usize;
    let files = [
        ("warm.sbatch", job("warm", Some(a.seeds as usize), "--only-seed \"$SLURM_ARRAY_TASK_ID\" --warm-only")),
        ("runs.sbatch", job("runs", Some(runs), "--task \"$SLURM_ARRAY_TASK_ID\"")),
        ("report.sbatch", job("report", None, "--report-only")),
        (
            "submit.sh",
            "#!/bin/bash\n# Submit the sweep: warm starts, then the runs once all succeeded, then the report.\n\
             set -euo pipefail\ncd \"$(dirname \"$0\")\"\nwarm=$(sbatch --parsable warm.sbatch)\n\
             runs=$(sbatch --parsable --dependency=afterok:\"${warm%%;*}\" runs.sbatch)\n\
             report=$(sbatch --parsable --dependency=afterany:\"${runs%%;*}\" report.sbatch)\n\
             echo \"warm starts: job $warm, runs: job $runs, report: job $report\"\n"
                .to_string(),
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        repic_data::write_atomic(&path, text.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    println!(
        "wrote {} ({} warm-start tasks, {runs} run tasks, the report); submit them with {}",
        dir.display(),
        a.seeds,
        dir.join("submit.sh").display()
    );
    Ok(())
}

/// Whether `runs` hold a finished run of `v` and `seed` evaluated the same way (`--top-k`).
fn finished(runs: &[RunResult], v: &Variant, seed: u64, top_k: Option<usize>) -> bool {
    runs.iter().any(|r| r.seed == seed && r.variant == v.name && r.is_ok() && r.top_k == top_k)
}

/// Whether this process runs inside a sweep that made the warm starts (a `--jobs` / `--devices` child or a
/// Slurm run task): it never makes them itself.
fn inside(a: &Args) -> bool {
    a.worker || a.task.is_some()
}

/// The sizes of a seed's runs.
fn plan(a: &Args, seed: u64) -> Plan {
    let mut plan = Plan::new(a.quick, seed);
    plan.grpo_steps = a.grpo_steps.unwrap_or(plan.grpo_steps);
    plan
}

/// The SFT model of `seed`'s warm start, made if there is no finished one (whatever a killed one left goes);
/// with `--top-k`, also the seed's retrieval encoder and concept store.
fn warm_started(a: &Args, seed: u64) -> anyhow::Result<PathBuf> {
    let seed_dir = a.out.join(format!("seed-{seed}"));
    let dev = default_device();
    let sft = match reused_sft(&seed_dir) {
        Ok(m) => m,
        Err(_) => {
            anyhow::ensure!(!inside(a), "{}: no finished warm start (made first by the sweep)", seed_dir.display());
            if seed_dir.exists() {
                std::fs::remove_dir_all(&seed_dir).with_context(|| format!("removing {}", seed_dir.display()))?;
            }
            Backend::seed(&dev, seed);
            warm_start(&seed_dir, &plan(a, seed), &seed_dir.join("data"), seed, false, &dev)?
        }
    };
    if a.top_k.is_some() && !inside(a) {
        Backend::seed(&dev, seed);
        retrieval_setup(&seed_dir, &seed_dir.join("data"), a.quick, seed, &dev)?;
    }
    Ok(sft)
}

/// Train and evaluate one variant of one seed, and record its result line (ok or failed).
fn run_variant(a: &Args, v: &Variant, seed: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let seed_dir = a.out.join(format!("seed-{seed}"));
    let (data, run_dir) = (seed_dir.join("data"), seed_dir.join(&v.name));
    let sft_model = warm_started(a, seed)?;
    let base = match &a.base {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        None => DEMO_TOML.to_string(),
    };
    let origin = a.base.clone().unwrap_or_else(|| PathBuf::from("configs/demo.toml"));
    let mut sets = vec![
        format!("seed={seed}"),
        format!("model={}", path_value(&sft_model)),
        format!("output_dir={}", path_value(&run_dir)),
        format!("data.train={}", path_value(&data.join("train/records.jsonl"))),
        format!("data.image_root={}", path_value(&data)),
        format!("train.max_steps={}", plan(a, seed).grpo_steps),
    ];
    sets.extend(v.overrides.iter().cloned());
    let named = PathBuf::from(format!("{} with variant {}", origin.display(), v.name));
    let dev = default_device();
    let outcome = match a.top_k {
        None => one_run(&base, &named, &sets, &run_dir, &data, &CaptionReferences::Given, &dev),
        Some(top_k) => retrieval_setup(&seed_dir, &data, a.quick, seed, &dev).and_then(|(_store, retriever, _)| {
            one_run(
                &base,
                &named,
                &sets,
                &run_dir,
                &data,
                &CaptionReferences::Retrieved { retriever: &retriever, top_k },
                &dev,
            )
        }),
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut line = RunResult {
        variant: v.name.clone(),
        seed,
        status: "failed".into(),
        error: None,
        metrics: None,
        oct_correct: Vec::new(),
        names_recalled: Vec::new(),
        seconds,
        config_hash: String::new(),
        machine: Machine::here().to_string(),
        top_k: a.top_k,
    };
    match outcome {
        Ok((held, hash)) => {
            line.status = "ok".into();
            line.metrics = Some(held.metrics);
            line.oct_correct = held.oct_correct;
            line.names_recalled = held.names_recalled;
            line.config_hash = hash;
        }
        Err(e) => line.error = Some(format!("{e:#}")),
    }
    match &line.error {
        None => println!("{} seed {seed}: done in {seconds:.0} s", v.name),
        Some(e) => println!("{} seed {seed}: FAILED after {seconds:.0} s: {e}", v.name),
    }
    record_result(&a.out.join("results.jsonl"), &line)?;
    Ok(())
}

/// Run the pending (variant, seed) pairs as child processes of this binary, one per slot at a time (`--jobs N`:
/// N slots; `--devices`: one slot per GPU, whose id the child gets as CUDA_VISIBLE_DEVICES), each logging to
/// `seed-S/<variant>.log`; a child that dies without recording is reported.
fn run_parallel(a: &Args, pending: &[(&Variant, u64)], slots: Vec<Option<usize>>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the repic binary")?;
    let mut queue: std::collections::VecDeque<&(&Variant, u64)> = pending.iter().collect();
    let mut free: Vec<Option<usize>> = slots.into_iter().rev().collect();
    let mut running: Vec<(String, Option<usize>, std::process::Child)> = Vec::new();
    while !queue.is_empty() || !running.is_empty() {
        while !free.is_empty() {
            let Some((v, seed)) = queue.pop_front() else { break };
            let slot = free.pop().flatten();
            let log_path = a.out.join(format!("seed-{seed}/{}.log", v.name));
            let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
            let mut cmd = run_command(a, &exe, v, *seed, slot);
            let place = slot.map(|d| format!(" on GPU {d}")).unwrap_or_default();
            cmd.stdout(log.try_clone()?).stderr(log);
            println!("{} seed {seed}: started{place} (log {})", v.name, log_path.display());
            running.push((format!("{} seed {seed}", v.name), slot, cmd.spawn().context("starting a run")?));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut still = Vec::new();
        for (what, slot, mut child) in running {
            match child.try_wait()? {
                Some(status) => {
                    if status.success() {
                        println!("{what}: finished");
                    } else {
                        println!("{what}: the run process ended with {status} (see its log)");
                    }
                    free.push(slot);
                }
                None => still.push((what, slot, child)),
            }
        }
        running = still;
    }
    Ok(())
}

/// The child process of one run: this binary in worker mode for `v` and `seed`, on GPU `slot` (the only one it
/// sees, through CUDA_VISIBLE_DEVICES) when given.
fn run_command(a: &Args, exe: &Path, v: &Variant, seed: u64, slot: Option<usize>) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("ablate").arg("--worker").arg("--variants").arg(&v.file);
    cmd.args(["--seeds", &a.seeds.to_string(), "--only-seed", &seed.to_string()]);
    cmd.arg("--out").arg(&a.out);
    if a.quick {
        cmd.arg("--quick");
    }
    if let Some(n) = a.grpo_steps {
        cmd.args(["--grpo-steps", &n.to_string()]);
    }
    if let Some(k) = a.top_k {
        cmd.args(["--top-k", &k.to_string()]);
    }
    if let Some(b) = &a.base {
        cmd.arg("--base").arg(b);
    }
    if let Some(d) = slot {
        cmd.env("CUDA_VISIBLE_DEVICES", d.to_string());
    }
    cmd
}

/// Train one variant (resuming a killed run) and evaluate it; returns its held-out evaluation and config hash.
fn one_run(
    base: &str,
    origin: &Path,
    sets: &[String],
    run_dir: &Path,
    data: &Path,
    refs: &CaptionReferences<'_, Backend>,
    dev: &burn::tensor::Device<Backend>,
) -> anyhow::Result<(repic_eval::held_out::HeldOut, String)> {
    let cfg = TrainConfig::parse(base, origin, sets)?;
    let hash = fnv(&cfg.to_toml());
    let resume =
        run_dir.join("metrics.jsonl").exists() || !repic_trainer::checkpoint::list_checkpoints(run_dir).is_empty();
    let mut bar = StepBar::new();
    let out =
        repic_trainer::train::<Autodiff<Backend>>(cfg, resume, default_device(), &mut |m, s, t| bar.update(m, s, t))?;
    bar.finish();
    let ckpt = crate::prompt::load_model(&out.checkpoint, None)?;
    let held = evaluate_held_out_with(&ckpt, data, &run_dir.join("captions.json"), refs, dev)?;
    Ok((held, hash))
}

/// `table.md`, `table.csv` and `plots/<metric>.png` of the runs so far.
fn write_report(out: &Path, runs: &[RunResult], baseline: &str) -> anyhow::Result<()> {
    let r = report(runs, baseline)?;
    let md = format!("# Reward ablations ({} runs)\n\n{}", runs.len(), r.to_markdown());
    repic_data::write_atomic(&out.join("table.md"), md.as_bytes())?;
    repic_data::write_atomic(&out.join("table.csv"), r.to_csv().as_bytes())?;
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    for &(key, label) in &r.rows {
        let bars: Vec<_> =
            r.variants.iter().map(|(name, (_, cells))| (name.clone(), cells[key].mean, cells[key].std)).collect();
        repic_trainer::plot::bar_chart(&plots.join(format!("{key}.png")), label, &bars)?;
    }
    println!("{}", r.to_markdown());
    println!("results: {}, table: {}", out.join("results.jsonl").display(), out.join("table.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn a_run_on_a_gpu_sees_only_that_gpu_and_keeps_the_sweeps_settings() {
        use clap::Parser;
        let a =
            Cli::try_parse_from(["x", "--variants", "v", "--devices", "2,5", "--top-k", "2", "--quick"]).unwrap().args;
        assert_eq!(a.devices, [2, 5]);
        let v = Variant { file: "configs/ablations/full.toml".into(), name: "full".into(), overrides: vec![] };
        let cmd = run_command(&a, Path::new("repic"), &v, 1, Some(5));
        let envs: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        assert_eq!(envs, [("CUDA_VISIBLE_DEVICES".into(), Some("5".into()))]);
        let args: Vec<String> = cmd.get_args().map(|s| s.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("ablate --worker --variants configs/ablations/full.toml --seeds 3 --only-seed 1"));
        assert!(joined.contains("--quick") && joined.contains("--top-k 2"), "{joined}");
        assert_eq!(run_command(&a, Path::new("repic"), &v, 1, None).get_envs().count(), 0, "--jobs runs see every GPU");
        assert!(Cli::try_parse_from(["x", "--variants", "v", "--devices", "0", "--jobs", "2"]).is_err());
    }

    #[test]
    fn variant_files_become_overrides() {
        let t: toml::Table =
            toml::from_str("seed = 3\n[rewards]\nset = \"no_ict\"\n[grpo]\nstop_strings = [\"a\"]\n").unwrap();
        let mut o = Vec::new();
        flatten("", &toml::Value::Table(t), &mut o);
        o.sort();
        assert_eq!(o, ["grpo.stop_strings=[\"a\"]", "rewards.set=\"no_ict\"", "seed=3"]);
        assert_eq!(fnv(""), "cbf29ce484222325");
        assert_ne!(fnv("a"), fnv("b"));
    }
}
