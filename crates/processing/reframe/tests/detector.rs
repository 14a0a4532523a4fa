//! CenterFace on tract against real pictures: the astronaut photo (tests/fixtures),
//! placed by ffmpeg at known spots in a 1280×720 frame and scaled to the analysis
//! tap's 320×180, as the ladder's child gives it.

use std::{path::PathBuf, process::Command};

use starling_reframe::{FaceDetector, I420};

/// The model scripts/face-model installs (scripts/test runs it first).
fn model() -> PathBuf {
    let path = std::env::var_os("STARLING_FACE_MODEL").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target"),
                PathBuf::from,
            );
            target.join("tools/models/centerface.onnx")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is absent: run scripts/face-model --install",
        path.display()
    );
    path
}

/// The photo, `size` px square, with its top-left corner at (`x`, `y`) of a grey
/// 1280×720 frame, scaled to `w × h` I420.
fn frame(size: u32, x: u32, y: u32, w: u32, h: u32) -> Vec<u8> {
    let photo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/astronaut-256.jpg"
    );
    let out = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=0x506070:s=1280x720:d=1",
        ])
        .args(["-i", photo, "-filter_complex"])
        .arg(format!(
            "[1]scale={size}:{size}[p];[0][p]overlay={x}:{y},scale={w}:{h},format=yuv420p"
        ))
        .args(["-frames:v", "1", "-f", "rawvideo", "pipe:"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn finds_the_face_where_it_is() {
    let mut detector = FaceDetector::load(&model()).expect("the model loads");
    let mut found = 0;
    let positions = [(0u32, 100u32), (300, 200), (600, 50), (860, 300)];
    for &(x, y) in &positions {
        let pixels = frame(420, x, y, 320, 180);
        let picture = I420::new(320, 180, &pixels).unwrap();
        let faces = detector.detect(&picture).unwrap();
        // The photo spans (x..x+420, y..y+420) of the 1280×720 frame; the face's
        // centre lies at about (0.44, 0.24) of it.
        let (px, py) = (x as f32 / 1280.0, y as f32 / 720.0);
        let (pw, ph) = (420.0 / 1280.0, 420.0 / 720.0);
        let inside = faces.iter().any(|f| {
            let (cx, cy) = (f.rect.cx(), f.rect.cy());
            cx > px + pw * 0.35 && cx < px + pw * 0.55 && cy > py + ph * 0.15 && cy < py + ph * 0.35
        });
        eprintln!("photo at ({x}, {y}): {faces:?}");
        if inside {
            found += 1;
        }
        assert!(faces.len() <= 2, "false faces: {faces:?}");
    }
    assert_eq!(
        found,
        positions.len(),
        "the face is found at every position"
    );
}

#[test]
fn an_empty_picture_has_no_face_and_odd_sizes_work() {
    let mut detector = FaceDetector::load(&model()).expect("the model loads");
    let grey = vec![128u8; 320 * 180 * 3 / 2];
    let picture = I420::new(320, 180, &grey).unwrap();
    assert!(detector.detect(&picture).unwrap().is_empty());
    // An odd size (padded to 352×224 inside).
    let pixels = frame(420, 300, 100, 331, 203);
    let picture = I420::new(331, 203, &pixels).unwrap();
    let faces = detector.detect(&picture).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    assert!(faces[0].rect.right() <= 1.0 && faces[0].rect.bottom() <= 1.0);
}

#[test]
fn a_file_that_is_not_a_model_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("starling-reframe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bogus = dir.join("centerface.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let err = FaceDetector::load(&bogus).unwrap_err();
    assert!(err.to_string().contains("cannot be loaded"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
