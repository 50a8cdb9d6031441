//! `sst1mflow camera`: the DigiCam description this build uses (geometry, neighbours, border
//! masks, pulse model, telescopes), as a summary or as JSON for other tools.
use super::Cli;
use crate::error::Result;
use crate::instrument::{self, camera, pulse};
use serde_json::json;

pub fn run(cli: &Cli) -> Result<i32> {
    let g = camera::CameraGeometry::digicam();
    if cli.json {
        let neighbors: Vec<&[u16]> = (0..g.n_pixels()).map(|p| g.neighbors(p)).collect();
        let pulse_t: Vec<f64> = (0..pulse::REFERENCE_SAMPLES).map(|i| i as f64 * pulse::REFERENCE_STEP_NS).collect();
        let pulse_a = pulse::reference_table();
        println!(
            "{}",
            json!({
                "camera": camera::CAMERA_NAME,
                "n_pixels": g.n_pixels(),
                "pix_id": (0..g.n_pixels()).collect::<Vec<_>>(),
                "pix_x": g.pix_x, "pix_y": g.pix_y,
                "pix_area": camera::PIXEL_AREA_M2, "pix_rot_deg": camera::PIX_ROT_DEG, "cam_rot_deg": camera::CAM_ROT_DEG,
                "neighbors": neighbors,
                "border_width_1": g.border_width_1, "border_width_2": g.border_width_2,
                "radius_m": g.radius(),
                "n_samples": instrument::N_SAMPLES, "sample_ns": instrument::SAMPLE_NS,
                "pulse": {"t_ns": pulse_t, "amplitude": pulse_a, "peak_ns": pulse::peak_time_ns(), "area_ns": pulse::area_ns()},
                "equivalent_focal_length_m": instrument::EQUIVALENT_FOCAL_LENGTH_M,
                "telescopes": instrument::TELESCOPES.iter().map(|t| json!({"tel_id": t.tel_id, "position_m": t.position_m})).collect::<Vec<_>>(),
            })
        );
    } else {
        let n6 = (0..g.n_pixels()).filter(|&p| g.neighbors(p).len() == 6).count();
        println!(
            "{}: {} hexagonal pixels, pitch {:.1} mm, area {:.4e} m², rotation {}°",
            camera::CAMERA_NAME,
            g.n_pixels(),
            camera::PIXEL_PITCH_M * 1e3,
            camera::PIXEL_AREA_M2,
            camera::PIX_ROT_DEG
        );
        println!(
            "neighbours: {n6} inner pixels with 6; border rings: {} (width 1), {} (width 2)",
            g.border_width_1.iter().filter(|b| **b).count(),
            g.border_width_2.iter().filter(|b| **b).count()
        );
        println!(
            "readout: {} samples at {} ns; pulse peak {:.2} ns, area {:.2} ns",
            instrument::N_SAMPLES,
            instrument::SAMPLE_NS,
            pulse::peak_time_ns(),
            pulse::area_ns()
        );
        for t in &instrument::TELESCOPES {
            println!(
                "telescope {} at {:?} m, equivalent focal length {} m",
                t.tel_id,
                t.position_m,
                instrument::EQUIVALENT_FOCAL_LENGTH_M
            );
        }
    }
    Ok(0)
}
