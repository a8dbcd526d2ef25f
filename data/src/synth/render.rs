//! Rasterising toy objects into images: implicit shapes in object space, 2x2 supersampling, a label map.

use image::RgbImage;
use rand::Rng;

use super::concept::Look;

/// An object placed in an image: look, centre, size (half-width of the body in pixels) and rotation.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    /// Attributes.
    pub look: Look,
    /// Centre x in pixels.
    pub cx: f32,
    /// Centre y in pixels.
    pub cy: f32,
    /// Half-width of the body in pixels.
    pub size: f32,
    /// Rotation in radians.
    pub angle: f32,
}

/// The grey of plain backgrounds.
const PLAIN_GREY: f32 = 215.0;

/// How far (in body half-widths) an object with its accessory reaches from its centre.
pub const REACH: f32 = 1.75;

fn body(shape: usize, u: f32, v: f32) -> bool {
    match shape {
        0 => u.abs() <= 0.85 && v.abs() <= 0.85,
        1 => u * u + v * v <= 0.81,
        2 => (-0.9..=0.85).contains(&v) && u.abs() <= (v + 0.9) * 0.55,
        3 => u.abs() / 0.8 + v.abs() <= 0.95,
        4 => {
            let r = (u * u + v * v).sqrt();
            let sector = std::f32::consts::TAU / 5.0;
            let t = (v.atan2(u) + std::f32::consts::FRAC_PI_2).rem_euclid(sector) / sector;
            r <= 0.42 + 0.55 * (2.0 * t - 1.0).abs().powf(1.6)
        }
        5 => (u / 0.65).powi(2) + (v / 0.92).powi(2) <= 1.0,
        _ => v.abs() <= 0.8 && u.abs() * 0.866 + v.abs() * 0.5 <= 0.82,
    }
}

fn pattern(kind: usize, u: f32, v: f32) -> bool {
    let frac = |x: f32| x - x.floor();
    match kind {
        0 => false,
        1 => ((v * 5.0 + 10.0).floor() as i32) % 2 == 0,
        2 => (frac(u * 3.0) - 0.5).powi(2) + (frac(v * 3.0) - 0.5).powi(2) < 0.06,
        3 => ((u * 3.0 + 9.0).floor() as i32 + (v * 3.0 + 9.0).floor() as i32) % 2 == 0,
        _ => (((u * u + v * v).sqrt() * 5.0).floor() as i32) % 2 == 1,
    }
}

/// Which part of the accessory covers (u, v): 1 accessory colour, 2 white (eye), 3 black (pupil).
fn accessory(kind: usize, u: f32, v: f32) -> u8 {
    let circle = |x: f32, y: f32, r: f32| (u - x).powi(2) + (v - y).powi(2) <= r * r;
    match kind {
        1 if (u.abs() <= 0.35 && (-1.4..=-0.85).contains(&v)) || (u.abs() <= 0.6 && (-0.98..=-0.85).contains(&v)) => 1,
        2 if u.abs() <= 0.55 && (-1.3..=-0.8).contains(&v) && (v + 1.05).abs() <= u.abs() * 0.45 + 0.05 => 1,
        3 if (u.abs() <= 0.06 && (-1.45..=-0.8).contains(&v)) || circle(0.0, -1.52, 0.17) => 1,
        4 if circle(-0.3, -0.2, 0.08) || circle(0.3, -0.2, 0.08) => 3,
        4 if circle(-0.3, -0.2, 0.19) || circle(0.3, -0.2, 0.19) => 2,
        _ => 0,
    }
}

/// The colour of `look` at object-space point (u, v), or `None` outside the object.
fn shade(look: &Look, u: f32, v: f32) -> Option<[u8; 3]> {
    let inside = body(look.shape, u, v);
    match accessory(look.accessory, u, v) {
        1 => return Some(look.accessory_rgb()),
        2 if inside => return Some([250, 250, 250]),
        3 if inside => return Some([10, 10, 10]),
        _ => {}
    }
    inside.then(|| if pattern(look.pattern, u, v) { look.ink_rgb() } else { look.rgb() })
}

/// An image being drawn, with the index (+1) of the object covering each pixel.
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    rgb: Vec<[f32; 3]>,
    /// 0 = background, k = the k-th painted object (coverage >= 1/2).
    pub labels: Vec<u16>,
    /// A flat grey background, lit at brightness 1.
    plain: bool,
}

impl Canvas {
    /// A canvas with a two-colour vertical gradient and mild noise, or (`plain`) one flat light grey.
    pub fn background(width: u32, height: u32, plain: bool, rng: &mut impl Rng) -> Self {
        let (top, bottom) = if plain {
            ([PLAIN_GREY; 3], [PLAIN_GREY; 3])
        } else {
            let mut tone = || -> [f32; 3] { std::array::from_fn(|_| rng.random_range(150.0..245.0)) };
            (tone(), tone())
        };
        let mut rgb = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            let t = y as f32 / height.max(1) as f32;
            for _ in 0..width {
                let n = if plain { 0.0 } else { rng.random_range(-6.0..6.0) };
                rgb.push(std::array::from_fn(|c| top[c] * (1.0 - t) + bottom[c] * t + n));
            }
        }
        Canvas { width, height, rgb, labels: vec![0; (width * height) as usize], plain }
    }

    /// The lighting of the finished image: a random brightness in `range`, or 1 on a plain background.
    pub fn brightness(&self, range: std::ops::Range<f32>, rng: &mut impl Rng) -> f32 {
        if self.plain { 1.0 } else { rng.random_range(range) }
    }

    /// Paint `obj` as label `id` (>= 1) with 2x2 supersampling; returns its box `[x1, y1, x2, y2]` (end
    /// exclusive) over the pixels it covers at least half, or `None` if it covers none.
    pub fn paint(&mut self, obj: &Placed, id: u16) -> Option<[i64; 4]> {
        let reach = obj.size * REACH * std::f32::consts::SQRT_2;
        let (sin, cos) = (-obj.angle).sin_cos();
        let x0 = (obj.cx - reach).floor().max(0.0) as u32;
        let y0 = (obj.cy - reach).floor().max(0.0) as u32;
        let x1 = ((obj.cx + reach).ceil() as u32).min(self.width);
        let y1 = ((obj.cy + reach).ceil() as u32).min(self.height);
        let mut bounds: Option<[i64; 4]> = None;
        for y in y0..y1 {
            for x in x0..x1 {
                let mut sum = [0.0f32; 3];
                let mut hits = 0;
                for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let dx = x as f32 + sx - obj.cx;
                    let dy = y as f32 + sy - obj.cy;
                    let u = (dx * cos - dy * sin) / obj.size;
                    let v = (dx * sin + dy * cos) / obj.size;
                    if let Some(c) = shade(&obj.look, u, v) {
                        hits += 1;
                        for (acc, v) in sum.iter_mut().zip(c) {
                            *acc += f32::from(v);
                        }
                    }
                }
                if hits == 0 {
                    continue;
                }
                let i = (y * self.width + x) as usize;
                let cover = hits as f32 / 4.0;
                for (px, acc) in self.rgb[i].iter_mut().zip(sum) {
                    *px = *px * (1.0 - cover) + acc / hits as f32 * cover;
                }
                if hits >= 2 {
                    self.labels[i] = id;
                    let (x, y) = (i64::from(x), i64::from(y));
                    bounds = Some(match bounds {
                        None => [x, y, x + 1, y + 1],
                        Some(b) => [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)],
                    });
                }
            }
        }
        bounds
    }

    /// The finished image, every channel scaled by `brightness`.
    pub fn into_image(self, brightness: f32) -> RgbImage {
        let mut img = RgbImage::new(self.width, self.height);
        for (p, c) in img.pixels_mut().zip(&self.rgb) {
            p.0 = c.map(|v| (v * brightness).round().clamp(0.0, 255.0) as u8);
        }
        img
    }
}

/// Place objects of the given looks without overlap (their reach circles are disjoint). Sizes are drawn in
/// `[min, max]` half-widths and shrink when the image is crowded. Returns them in the order given.
pub fn place(looks: &[Look], width: u32, height: u32, min: f32, max: f32, rng: &mut impl Rng) -> Vec<Placed> {
    let mut scale = 1.0f32;
    loop {
        let mut placed: Vec<Placed> = Vec::with_capacity(looks.len());
        for look in looks {
            let size = rng.random_range(min..=max) * scale;
            let r = size * REACH;
            let (w, h) = (width as f32, height as f32);
            let spot = (0..200).find_map(|_| {
                let cx = rng.random_range(r..(w - r).max(r + 1.0));
                let cy = rng.random_range(r..(h - r).max(r + 1.0));
                let free = placed.iter().all(|p| {
                    let d = ((p.cx - cx).powi(2) + (p.cy - cy).powi(2)).sqrt();
                    d >= p.size * REACH + r + 2.0
                });
                free.then_some((cx, cy))
            });
            match spot {
                Some((cx, cy)) => {
                    let angle = rng.random_range(-0.26..0.26);
                    placed.push(Placed { look: *look, cx, cy, size, angle });
                }
                None => break,
            }
        }
        if placed.len() == looks.len() {
            return placed;
        }
        scale *= 0.85;
    }
}
