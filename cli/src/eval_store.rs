//! `repic eval caption | recognition | preference`: the personalization benchmarks with a concept store
//! (captioning with references given or retrieved, recognition with positives and negatives) and PreferThinker
//! preference accuracy on records.

use std::path::{Path, PathBuf};

use anyhow::Context;
use repic_data::{Method, load_query_list, load_records};
use repic_eval::captioning::CaptionOptions;
use repic_eval::personalized::{
    RecognitionOptions, RecognitionPrompt, References, caption_with_store, recognition, recognition_items,
};
use repic_eval::runner::{AnswerOptions, answer_records};
use repic_eval::{CaseRule, Scorer, answer_correct, score_captions};
use repic_models::{DefaultBackend as Backend, default_device as device};
use repic_personalize::prefer::{REPETITION_PENALTY, parse_assessment};
use repic_personalize::{ConceptStore, Retriever, SqliteStore};

/// The store-backed evaluations.
#[derive(clap::Subcommand)]
pub enum Task {
    /// RePIC's multi-concept captioning: captions in RePIC's result format and both scorers' P / R / F1.
    Caption(CaptionArgs),
    /// Recognition (Yo'LLaVA / MyVLM protocol): "Is <name> in this image?" on positives and negatives.
    Recognition(RecognitionArgs),
    /// PreferThinker preference accuracy on `preference` records (greedy, repetition penalty 1.15).
    Preference(PreferenceArgs),
}

/// The model and the store.
#[derive(clap::Args)]
pub struct ModelStore {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
    /// The concept store.
    #[arg(long)]
    db: PathBuf,
    /// A query list (`{image: ["<n1>", ...]}`, RePIC's query_tot files).
    #[arg(long)]
    queries: PathBuf,
    /// Folder the query images are relative to (default: the query list's folder).
    #[arg(long)]
    image_root: Option<PathBuf>,
    /// Evaluate only the first N queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `repic eval caption`.
#[derive(clap::Args)]
pub struct CaptionArgs {
    #[command(flatten)]
    common: ModelStore,
    /// Give each query its ground-truth concepts as references (RePIC's skip-retrieval).
    #[arg(long, conflicts_with = "top_k")]
    skip_retrieval: bool,
    /// References retrieved per query (RAP retrieval on the whole image). RePIC: 2; 4 for 4-concept queries.
    #[arg(long)]
    top_k: Option<usize>,
    /// The captioning question.
    #[arg(long, default_value = "Give a personalized caption of this image.")]
    question: String,
    /// Most tokens per caption (RePIC: 1024).
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    /// Write the captions here in RePIC's result format.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `repic eval recognition`.
#[derive(clap::Args)]
pub struct RecognitionArgs {
    #[command(flatten)]
    common: ModelStore,
    /// Negative concepts asked about per query image.
    #[arg(long, default_value_t = 2)]
    negatives: usize,
    /// Seed of the negatives.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How each item is asked: Yo'LLaVA's question after the concept as a reference, or RePIC's OCT
    /// instruction (the form a RePIC-trained model has seen).
    #[arg(long, value_enum, default_value = "yollava")]
    prompt: PromptForm,
    /// Most tokens per answer (a model that reasons before its yes or no needs more than one word).
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
}

/// `--prompt` of `repic eval recognition`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PromptForm {
    /// "Is <name> in this image? Answer with a single word, either yes or no."
    Yollava,
    /// RePIC's OCT template with its yes/no suffix.
    Oct,
}

/// `repic eval preference`.
#[derive(clap::Args)]
pub struct PreferenceArgs {
    #[command(flatten)]
    model: crate::prompt::ModelArgs,
    /// Records with `accu_reward_method = "preference"` (RePIC JSON / JSONL).
    #[arg(long)]
    records: PathBuf,
    /// Folder the records' images are relative to (default: the records file's folder).
    #[arg(long)]
    image_root: Option<PathBuf>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn root_of(given: Option<PathBuf>, file: &Path) -> PathBuf {
    given.unwrap_or_else(|| file.parent().map(PathBuf::from).unwrap_or_default())
}

struct Loaded {
    ckpt: repic_models::Checkpoint<Backend>,
    retriever: Retriever<Backend>,
    keys: Vec<String>,
    db: repic_data::ConceptDb,
    queries: Vec<(String, Vec<String>)>,
    root: PathBuf,
}

fn load(c: &ModelStore) -> anyhow::Result<Loaded> {
    let mut store = SqliteStore::open(&c.db)?;
    let (bar, mut update) = crate::db::embed_bar();
    let (retriever, _) = Retriever::<Backend>::open(&mut store, None, &device(), &mut update)?;
    bar.finish_and_clear();
    let list = load_query_list(&c.queries)?;
    let mut queries: Vec<(String, Vec<String>)> = list.queries().map(|(i, k)| (i.to_string(), k.to_vec())).collect();
    queries.truncate(c.limit.unwrap_or(queries.len()));
    let keys = store.concepts()?.into_iter().map(|c| c.key).collect();
    Ok(Loaded {
        ckpt: c.model.load()?,
        retriever,
        keys,
        db: store.export()?,
        queries,
        root: root_of(c.image_root.clone(), &c.queries),
    })
}

/// Run a store-backed evaluation.
pub fn run(t: Task) -> anyhow::Result<()> {
    match t {
        Task::Caption(a) => caption(a),
        Task::Recognition(a) => recognize(a),
        Task::Preference(a) => preference(a),
    }
}

fn caption(a: CaptionArgs) -> anyhow::Result<()> {
    let refs = match (a.skip_retrieval, a.top_k) {
        (true, _) => References::GroundTruth,
        (false, Some(k)) if k > 0 => References::Retrieved { top_k: k },
        (false, Some(_)) => anyhow::bail!("--top-k must be at least 1"),
        (false, None) => anyhow::bail!("give --skip-retrieval or --top-k K"),
    };
    let l = load(&a.common)?;
    let opts = CaptionOptions { question: a.question, max_new_tokens: a.max_new_tokens, batch: a.common.batch };
    let out = caption_with_store(&l.ckpt, &l.retriever, &l.queries, &l.root, refs, &opts, &device())
        .with_context(|| a.common.queries.display().to_string())?;
    let results = &out.captions.results;
    if let Some(p) = &a.out {
        repic_data::write_json_atomic(p, results)?;
    }
    let official = score_captions(results, Scorer::Official, CaseRule::Auto, None);
    let named = score_captions(results, Scorer::NameAware, CaseRule::Auto, Some(&l.db));
    let row = |s: &repic_eval::CaptionScores| {
        let (p, r, f) = s.rounded();
        serde_json::json!({"precision": p, "recall": r, "f1": f, "slots": s.slots})
    };
    let summary = serde_json::json!({
        "queries": results.len(), "official": row(&official), "name_aware": row(&named),
        "retrieval_recall": out.retrieval.percent(), "mean_caption_tokens": out.captions.mean_length(),
    });
    if a.common.json {
        println!("{summary}");
    } else {
        for (name, s) in [("official", &official), ("name-aware", &named)] {
            let (p, r, f) = s.rounded();
            println!("{name:<11} P {p:5.1}  R {r:5.1}  F1 {f:5.1}  ({} slots)", s.slots);
        }
        if matches!(refs, References::Retrieved { .. }) {
            println!("retrieval: {:.1}% of ground-truth concepts among the references", out.retrieval.percent());
        }
    }
    Ok(())
}

fn recognize(a: RecognitionArgs) -> anyhow::Result<()> {
    let l = load(&a.common)?;
    let items = recognition_items(&l.queries, &l.keys, a.negatives, a.seed);
    let prompt = match a.prompt {
        PromptForm::Yollava => RecognitionPrompt::YoLlava,
        PromptForm::Oct => RecognitionPrompt::Oct,
    };
    let opts = RecognitionOptions { prompt, max_new_tokens: a.max_new_tokens, batch: a.common.batch };
    let (s, _) = recognition(&l.ckpt, &l.retriever, &items, &l.root, &opts, &device())?;
    if a.common.json {
        let v = serde_json::json!({"positives": s.positives.percent(), "negatives": s.negatives.percent(),
            "weighted": s.weighted(), "items": items.len()});
        println!("{v}");
    } else {
        println!(
            "positives {:.1}% ({}), negatives {:.1}% ({}), weighted {:.1}%",
            s.positives.percent(),
            s.positives.total,
            s.negatives.percent(),
            s.negatives.total,
            s.weighted()
        );
    }
    Ok(())
}

fn preference(a: PreferenceArgs) -> anyhow::Result<()> {
    let records = load_records(&a.records)?;
    let n = records.len();
    let records: Vec<_> = records.into_iter().filter(|r| r.method == Method::Preference).collect();
    anyhow::ensure!(!records.is_empty(), "{}: none of its {n} records is a preference record", a.records.display());
    let ckpt = a.model.load()?;
    let opts = AnswerOptions {
        seed: 0,
        max_new_tokens: a.max_new_tokens,
        batch: a.batch,
        repetition_penalty: REPETITION_PENALTY,
    };
    let answers = answer_records(&ckpt, &records, &root_of(a.image_root, &a.records), opts, &device())?;
    let (mut correct, mut malformed, mut chose_a) = (0, 0, 0);
    for (r, g) in records.iter().zip(&answers.gens) {
        correct += usize::from(answer_correct(r, &g.text, None) == Some(true));
        match parse_assessment(&g.text) {
            Ok(x) => chose_a += usize::from(x.choice == "Image A"),
            Err(_) => malformed += 1,
        }
    }
    let pct = |x: usize| 100.0 * x as f64 / records.len() as f64;
    if a.json {
        let v = serde_json::json!({"records": records.len(), "accuracy": pct(correct), "malformed": pct(malformed),
            "chose_image_a": pct(chose_a)});
        println!("{v}");
    } else {
        println!(
            "{} records: accuracy {:.1}%, malformed answers {:.1}%, chose Image A {:.1}% of the well-formed",
            records.len(),
            pct(correct),
            pct(malformed),
            100.0 * chose_a as f64 / (records.len() - malformed).max(1) as f64
        );
    }
    Ok(())
}
