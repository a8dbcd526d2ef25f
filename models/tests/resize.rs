//! The two 8-bit bicubic resizes against their libraries: torchvision's uint8 antialiased resize (reference
//! outputs from `scripts/make_resize_fixture.py`, torch 2.9.0 / torchvision 0.24.0) is matched exactly on every
//! byte, down and up, on one axis and on both; Pillow's (the default, checked against transformers' slow
//! processor by the parity tests) differs from it on most of these cases.

use std::path::PathBuf;

use repic_models::resize::{ResizeKind, resize_bicubic_as};
use safetensors::SafeTensors;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resize")
}

#[test]
fn torchvision_uint8_antialiased_bicubic_is_matched_exactly() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir().join("expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&bytes).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 24);
    let mut pil_differs = 0;
    for c in cases {
        let img = image::open(dir().join(c["input"].as_str().unwrap())).unwrap().to_rgb8();
        let (w, h) = (c["width"].as_u64().unwrap() as u32, c["height"].as_u64().unwrap() as u32);
        let key = c["key"].as_str().unwrap();
        let want = expected.tensor(&format!("torchvision/{key}")).unwrap();
        assert_eq!(want.shape(), [h as usize, w as usize, 3], "{key}");
        let got = resize_bicubic_as(ResizeKind::Torchvision, &img, w, h);
        let off = got.as_raw().iter().zip(want.data()).filter(|(a, b)| a != b).count();
        assert_eq!(off, 0, "{key}: {off} bytes differ from torchvision");
        pil_differs += usize::from(resize_bicubic_as(ResizeKind::Pil, &img, w, h).as_raw() != want.data());
    }
    assert!(pil_differs >= 12, "Pillow's resize differs on {pil_differs} of 24 cases only");
}
