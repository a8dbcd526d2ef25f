//! A tiny checkpoint made from scratch loads like any Hugging Face folder: its trained tokenizer round-trips
//! text and keeps Qwen's special tokens whole, and the model generates from an image prompt.

mod common;

use common::{B, fixture};
use repic_data::Message;
use repic_models::{Checkpoint, GenerateOptions, TinySpec, create_tiny_checkpoint};

#[test]
fn a_tiny_checkpoint_trains_its_tokenizer_and_runs() {
    let corpus: Vec<String> = (0..200)
        .map(|i| format!("<bo{}> is a red cup with a blue dotted pattern. Is <bo{}> in this image? yes", i % 7, i % 5))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny");
    let spec = TinySpec { vocab_size: 400, ..TinySpec::default() };
    let dev = Default::default();
    create_tiny_checkpoint::<B>(&corpus, &spec, &out, false, &dev).unwrap();
    assert!(create_tiny_checkpoint::<B>(&corpus, &spec, &out, false, &dev).is_err(), "no silent overwrite");
    let ckpt = Checkpoint::<B>::load(&out, &dev).unwrap();
    assert!(
        ckpt.model.config().text.vocab_size <= 400 && ckpt.model.config().text.vocab_size > 300,
        "{}",
        ckpt.model.config().text.vocab_size
    );
    let text = "<bo3> is a red cup.";
    let ids = ckpt.tokenizer.encode(text).unwrap();
    assert!(ids.len() < text.len(), "BPE merges: {} tokens for {} bytes", ids.len(), text.len());
    assert_eq!(ckpt.tokenizer.decode(&ids).unwrap(), text);
    assert_eq!(ckpt.tokenizer.encode("<|im_end|><|image_pad|>").unwrap(), [2, 5]);
    assert_eq!(ckpt.stop_tokens, [2, 0]);
    let prompt = ckpt.prepare(&[Message::user_with_images(["image0.png"], "Is <bo3> here?")], &fixture("qwen2_vl"));
    let prompt = prompt.unwrap();
    assert_eq!(ckpt.tokenizer.end_of_turn().unwrap(), "<|im_end|>");
    let opts = GenerateOptions { max_new_tokens: 4, stop_tokens: ckpt.stop_tokens.clone(), ..Default::default() };
    let out = ckpt.engine(&dev).generate(&prompt.input, &opts).unwrap();
    assert!(!out.tokens.is_empty() && out.tokens.len() <= 4);
}
