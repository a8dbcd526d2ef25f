//! The key/value cache of a decoder, one row per sequence, with what a scheduler needs: allocate a row,
//! append new positions (the model does it in its step), fork a row for G samples, release a finished row,
//! join two caches whose rows have different lengths. Rows share one width; shorter rows are left-padded, and
//! the cache prepares the attention mask that hides the padding and the future.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::ModelError;

/// Handle of one sequence in a [`KvCache`], unique in the process (rows of joined caches never collide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqId(u64);

impl SeqId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        SeqId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Keys and values of one layer, `[rows, kv_heads, width, head_dim]` each (rotary already applied).
type LayerKv<B> = Option<(Tensor<B, 4>, Tensor<B, 4>)>;

/// One row: its sequence and how many of the shared width's first positions are padding.
#[derive(Clone, Copy, Debug)]
struct Row {
    id: SeqId,
    pad: usize,
}

/// Cached keys and values of every layer for a batch of sequences.
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerKv<B>>,
    rows: Vec<Row>,
    width: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a decoder of `layers` layers.
    pub fn new(layers: usize) -> Self {
        KvCache { layers: vec![None; layers], rows: Vec::new(), width: 0 }
    }

    /// A new row whose first step will start with `pad` padding positions (a left-padded prompt in a batch).
    /// Rows are allocated before anything is cached; a sequence that arrives later is prefilled in its own
    /// cache and [`KvCache::join`]ed.
    pub fn allocate(&mut self, pad: usize) -> Result<SeqId, ModelError> {
        if self.width > 0 {
            return Err(ModelError::Input(
                "rows are allocated before the first step; prefill a new sequence in its own cache and join it".into(),
            ));
        }
        let id = SeqId::fresh();
        self.rows.push(Row { id, pad });
        Ok(id)
    }

    /// Number of rows (sequences).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Cached positions per row, padding included.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.width == 0
    }

    /// The sequences, in row order.
    pub fn ids(&self) -> Vec<SeqId> {
        self.rows.iter().map(|r| r.id).collect()
    }

    /// The row of sequence `id`.
    pub fn row(&self, id: SeqId) -> Option<usize> {
        self.rows.iter().position(|r| r.id == id)
    }

    /// Cached positions of sequence `id`, padding excluded.
    pub fn len_of(&self, id: SeqId) -> Option<usize> {
        self.row(id).map(|i| self.width.saturating_sub(self.rows[i].pad))
    }

    /// Start a step of `t` new positions for `rows` rows (rows are allocated without padding on the first step
    /// of an empty cache); returns the attention mask `[rows or 1, t, width + t]`, true where a query must not
    /// look: keys in its future and padding keys (a padding query still sees itself, so no row is all masked).
    /// `None` when nothing is hidden.
    pub(crate) fn begin_step(
        &mut self,
        rows: usize,
        t: usize,
        device: &B::Device,
    ) -> Result<Option<Tensor<B, 3, Bool>>, ModelError> {
        if self.rows.is_empty() && self.width == 0 {
            self.rows = (0..rows).map(|_| Row { id: SeqId::fresh(), pad: 0 }).collect();
        }
        if rows != self.rows.len() {
            return Err(ModelError::Input(format!("a step of {rows} rows for a cache of {} rows", self.rows.len())));
        }
        let p = self.width;
        let padded = self.rows.iter().any(|r| r.pad > 0);
        if t == 0 || (t == 1 && !padded) {
            return Ok(None);
        }
        let pads: Vec<usize> = if padded { self.rows.iter().map(|r| r.pad).collect() } else { vec![0] };
        let mut mask = Vec::with_capacity(pads.len() * t * (p + t));
        for &pad in &pads {
            for q in p..p + t {
                mask.extend((0..p + t).map(|k| k > q || (k < pad && k != q)));
            }
        }
        Ok(Some(Tensor::from_data(TensorData::new(mask, [pads.len(), t, p + t]), device)))
    }

    /// Append a step's keys and values `[rows, kv_heads, t, head_dim]` to `layer`; returns the layer's whole
    /// keys and values. The width grows when the last layer has appended.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let t = k.dims()[2];
        let slot = &mut self.layers[layer];
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        if layer + 1 == self.layers.len() {
            self.width += t;
        }
        (k, v)
    }

    /// Replace sequence `id` by `n` copies of it in consecutive rows (the G samples of a GRPO group sharing one
    /// prefill); the first copy keeps `id`. Returns the copies' ids, `id` first.
    pub fn fork(&mut self, id: SeqId, n: usize) -> Result<Vec<SeqId>, ModelError> {
        let at = self.row(id).ok_or_else(|| unknown(id))?;
        if n == 0 {
            return Err(ModelError::Input("a fork needs at least one copy".into()));
        }
        let pad = self.rows[at].pad;
        let copies: Vec<SeqId> = std::iter::once(id).chain((1..n).map(|_| SeqId::fresh())).collect();
        if n == 1 {
            return Ok(copies);
        }
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.splice(at..=at, std::iter::repeat_n(at, n));
        if self.rows.len() == 1 {
            for (k, v) in self.layers.iter_mut().flatten() {
                *k = k.clone().repeat_dim(0, n);
                *v = v.clone().repeat_dim(0, n);
            }
        } else {
            self.select_rows(&order);
        }
        self.rows.splice(at..=at, copies.iter().map(|&id| Row { id, pad }));
        Ok(copies)
    }

    /// Drop sequence `id` (finished or cancelled); padding every remaining row shares is trimmed.
    pub fn release(&mut self, id: SeqId) -> Result<(), ModelError> {
        let at = self.row(id).ok_or_else(|| unknown(id))?;
        self.rows.remove(at);
        if self.rows.is_empty() {
            self.layers.iter_mut().for_each(|l| *l = None);
            self.width = 0;
            return Ok(());
        }
        let keep: Vec<usize> = (0..=self.rows.len()).filter(|&i| i != at).collect();
        self.select_rows(&keep);
        let shared = self.rows.iter().map(|r| r.pad).min().unwrap_or(0);
        if shared > 0 {
            let width = self.width - shared;
            for (k, v) in self.layers.iter_mut().flatten() {
                *k = k.clone().narrow(2, shared, width);
                *v = v.clone().narrow(2, shared, width);
            }
            self.rows.iter_mut().for_each(|r| r.pad -= shared);
            self.width = width;
        }
        Ok(())
    }

    /// Append the rows of `other` (sequences prefilled on their own) after this cache's rows; the narrower of
    /// the two is left-padded to the common width.
    pub fn join(&mut self, mut other: KvCache<B>) -> Result<(), ModelError> {
        if other.layers.len() != self.layers.len() {
            return Err(ModelError::Input(format!(
                "joining a cache of {} layers to one of {}",
                other.layers.len(),
                self.layers.len()
            )));
        }
        if other.rows.is_empty() {
            return Ok(());
        }
        if self.rows.is_empty() {
            *self = other;
            return Ok(());
        }
        if self.width == 0 || other.width == 0 {
            return Err(ModelError::Input("only caches that hold positions can be joined".into()));
        }
        let width = self.width.max(other.width);
        self.pad_left(width - self.width);
        other.pad_left(width - other.width);
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            if let (Some((k, v)), Some((ok, ov))) = (mine.take(), theirs) {
                *mine = Some((Tensor::cat(vec![k, ok], 0), Tensor::cat(vec![v, ov], 0)));
            }
        }
        self.rows.extend(other.rows);
        Ok(())
    }

    /// Keep the rows at `order` (repeats allowed), in that order.
    fn select_rows(&mut self, order: &[usize]) {
        let Some(device) = self.layers.iter().flatten().next().map(|(k, _)| k.device()) else { return };
        let idx: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [order.len()]), &device);
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().select(0, idx.clone());
            *v = v.clone().select(0, idx.clone());
        }
    }

    /// Put `n` zero positions before every row.
    fn pad_left(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            let [b, h, _, d] = k.dims();
            let zeros = Tensor::zeros([b, h, n, d], &k.device());
            *k = Tensor::cat(vec![zeros.clone(), k.clone()], 2);
            *v = Tensor::cat(vec![zeros, v.clone()], 2);
        }
        self.rows.iter_mut().for_each(|r| r.pad += n);
        self.width += n;
    }
}

fn unknown(id: SeqId) -> ModelError {
    ModelError::Input(format!("sequence {id:?} is not in the cache"))
}
