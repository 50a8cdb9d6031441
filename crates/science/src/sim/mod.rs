//! The embedded shower simulator: seeded, parametric Cherenkov images on the DigiCam camera,
//! turned into R1 waveforms (p.e. per sample) with the DigiCam pulse, night-sky background and
//! electronic noise. It lets the whole chain run with no external data, and it is a stage like
//! any other: same seed and parameters, same bytes.
//!
//! # Model (all in the camera plane; 1° = f·tan 1° = 9.775 cm at f = 5.6 m)
//!
//! | quantity | gamma | proton |
//! |---|---|---|
//! | energy | power law E^index on [E_min, E_max] | same |
//! | core | uniform in a disc of `max_impact_m` around the telescope; impact = distance | same |
//! | true direction | the source (offset along +x), or uniform within `viewcone_deg` of it | uniform within the view cone |
//! | shower maximum | h = 10 km − 1.2 km·log10(E/TeV), clamped to 6–14 km | same |
//! | light pool | 1 up to 130 m, then e^−(r−130 m)/70 m | 1 up to 160 m, then e^−(r−160 m)/90 m |
//! | mean photoelectrons | 120·(E/TeV)^1.05 × pool | 45·(E/TeV)^1.1 × pool |
//! | image centroid | source + atan(r/h) along the core's azimuth (the *disp*) | same, azimuth smeared by N(0, 40°) |
//! | longitudinal profile | Gamma(4) along the axis through the source: skewed, tail away from it | 1 + Poisson(1.2) sub-showers, each its own ellipse and orientation |
//! | length, width | 0.10° + 0.045°·ln(1 + E/0.3 TeV)·(1 + r/300 m); 0.035° + 0.012°·ln(1 + E/0.3 TeV) | 0.18–0.5°, 0.08–0.2° per sub-shower |
//! | arrival time | 60 ns + (0.6 + 0.045·r/m) ns/° × longitudinal offset + N(0, 0.8 ns) | 60 ns + U(−2, 2) ns/° × offset + N(0, 2 ns) |
//!
//! Every photoelectron is drawn individually (so image fluctuations, skewness and Poisson
//! statistics are natural), lands in the pixel whose hexagon contains it, and adds one pulse
//! normalised so that the integrated charge of one photoelectron is 1. The background comes
//! from a noise library built once per configuration: a 4 ms trace in which night-sky
//! photoelectrons arrive as a Poisson process of `nsb_rate_ghz`, their mean level removed (R1 is
//! baseline-subtracted), plus Irwin–Hall(4) electronic noise per sample (unit variance, within
//! 1% of a Gaussian to 3σ); each pixel of each event reads 50 samples at a random offset. An event triggers when some pixel and its neighbours together
//! collect at least `trigger_pe` Cherenkov photoelectrons.
//!
//! # Stereo
//!
//! [`Simulator::simulate_stereo`] draws one shower for several telescopes pointing the same way
//! and places each image exactly in ctapipe's frames (see [`crate::reco::stereo`]): the source
//! where the shower direction falls in the camera, the centroid where that telescope sees the
//! shower maximum, and the light pool, length and time gradient set by that telescope's
//! distance to the shower axis. The model of the table above is otherwise the same, with the
//! core drawn around the array centre. Mono simulation is unchanged by it (same bytes).
pub mod digicam;
pub mod rng;

use crate::instrument::camera::CameraGeometry;
use crate::instrument::{pulse, EQUIVALENT_FOCAL_LENGTH_M, N_SAMPLES, SAMPLE_NS};
use rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Particle {
    Gamma,
    Proton,
}

impl Particle {
    /// CORSIKA particle id, as in `true_shower_primary_id`.
    pub fn primary_id(self) -> u16 {
        match self {
            Particle::Gamma => 0,
            Particle::Proton => 101,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub particle: Particle,
    pub energy_min_tev: f64,
    pub energy_max_tev: f64,
    pub spectral_index: f64,
    pub max_impact_m: f64,
    /// 0 for a point source; otherwise directions are uniform within this radius of the source.
    pub viewcone_deg: f64,
    /// Source offset from the camera centre along +x (wobble), in degrees.
    pub source_offset_deg: f64,
    pub nsb_rate_ghz: f64,
    pub noise_pe: f64,
    pub trigger_pe: f64,
    pub seed: u64,
}

/// The truth of one simulated shower.
#[derive(Clone, Debug, PartialEq)]
pub struct Shower {
    pub event_id: u64,
    pub primary_id: u16,
    pub energy_tev: f64,
    pub core_x_m: f64,
    pub core_y_m: f64,
    pub impact_m: f64,
    /// True source direction in the camera (m).
    pub true_x_m: f64,
    pub true_y_m: f64,
    pub h_max_m: f64,
    /// Cherenkov photoelectrons that landed in the camera.
    pub n_photoelectrons: u64,
    pub triggered: bool,
    /// Centroid (m, camera frame) of the Cherenkov photoelectrons in the camera, before any
    /// background: the truth an image's Hillas centroid is compared with. NaN without light.
    pub centroid_m: (f64, f64),
}

/// Where an image lies in the camera: the true source position (m), the centroid's distance
/// from it (the *disp*, m) and direction (rad, camera frame), and the telescope's distance to
/// the shower axis, which scales the light pool, the image length and the time gradient.
#[derive(Clone, Copy, Debug)]
struct ImageGeometry {
    source: (f64, f64),
    disp_m: f64,
    azimuth: f64,
    impact_m: f64,
}

/// Height of the shower maximum above the telescopes (m) for a primary of `energy` TeV.
fn h_max_m(energy: f64) -> f64 {
    (10_000.0 - 1_200.0 * energy.log10()).clamp(6_000.0, 14_000.0)
}

/// The truth of one shower seen by several telescopes (ground frame: x north, y west; the core
/// relative to the array centre; `h_max_m` above the telescopes).
#[derive(Clone, Debug, PartialEq)]
pub struct StereoShower {
    pub event_id: u64,
    pub primary_id: u16,
    pub energy_tev: f64,
    pub alt_rad: f64,
    pub az_rad: f64,
    pub core_x_m: f64,
    pub core_y_m: f64,
    /// The true direction in the camera (m), the same for every telescope.
    pub true_x_m: f64,
    pub true_y_m: f64,
    pub h_max_m: f64,
    /// Distance from the array centre to the shower axis (m): sim_telarray's "Ra3d", the core
    /// distance of the thrown-shower histogram.
    pub axis_distance_m: f64,
    pub telescopes: Vec<TelescopeView>,
}

/// One telescope's part of a [`StereoShower`].
#[derive(Clone, Debug, PartialEq)]
pub struct TelescopeView {
    pub tel_id: u16,
    /// Ground distance from the telescope to the core (m), sst1mpipe's
    /// `true_tel_impact_distance`; the light model uses the distance to the axis.
    pub impact_m: f64,
    pub n_photoelectrons: u64,
    pub triggered: bool,
    /// As [`Shower::centroid_m`], in this telescope's camera.
    pub centroid_m: (f64, f64),
}

/// Metres in the camera per degree on the sky.
pub fn metres_per_degree() -> f64 {
    EQUIVALENT_FOCAL_LENGTH_M * 1f64.to_radians().tan()
}

/// Pulse table for fast addition: amplitude per photoelectron at τ = PULSE_T0 + i·STEP.
const PULSE_STEP_NS: f64 = 0.05;
const PULSE_T0_NS: f64 = pulse::T0_NS;
const PULSE_END_NS: f64 = 55.0;

pub struct Simulator {
    geom: CameraGeometry,
    pulse: Vec<f32>,
    /// Scratch: Cherenkov photoelectrons per pixel.
    signal: Vec<u32>,
    /// Noise library: background traces (NSB + electronic noise, mean removed) for the
    /// (nsb rate, noise, seed) it was built for, NOISE_BANK_SAMPLES long; each pixel of each
    /// event reads 50 samples from a random offset.
    noise_bank: Vec<f32>,
    noise_key: Option<(u64, u64, u64)>,
}

const NOISE_BANK_SAMPLES: usize = 1 << 20;

impl Simulator {
    pub fn new(geom: CameraGeometry) -> Simulator {
        let per_pe = SAMPLE_NS / pulse::area_ns();
        let n = ((PULSE_END_NS - PULSE_T0_NS) / PULSE_STEP_NS) as usize + 1;
        let table =
            (0..n).map(|i| (per_pe * pulse::amplitude(PULSE_T0_NS + i as f64 * PULSE_STEP_NS)) as f32).collect();
        let signal = vec![0; geom.n_pixels()];
        Simulator { geom, pulse: table, signal, noise_bank: Vec::new(), noise_key: None }
    }

    pub fn geometry(&self) -> &CameraGeometry {
        &self.geom
    }

    #[inline]
    fn add_pulse(&self, wave: &mut [f32], t_ns: f64) {
        // Samples s with τ = s·Δ − t inside the table.
        let first = (((t_ns + PULSE_T0_NS) / SAMPLE_NS).ceil().max(0.0)) as usize;
        let last = (((t_ns + PULSE_END_NS) / SAMPLE_NS).floor()).min(N_SAMPLES as f64 - 1.0);
        if last < 0.0 {
            return;
        }
        // The table index advances by a fixed step per sample.
        let step = (SAMPLE_NS / PULSE_STEP_NS) as usize;
        let mut i = ((first as f64 * SAMPLE_NS - t_ns - PULSE_T0_NS) / PULSE_STEP_NS + 0.5) as usize;
        for w in wave.iter_mut().take(last as usize + 1).skip(first) {
            match self.pulse.get(i) {
                Some(a) => *w += *a,
                None => break,
            }
            i += step;
        }
    }

    fn deposit(&mut self, wave: &mut [f32], x: f64, y: f64, t: f64) -> bool {
        match self.geom.pixel_at(x, y) {
            Some(p) => {
                self.signal[p] += 1;
                self.add_pulse(&mut wave[p * N_SAMPLES..(p + 1) * N_SAMPLES], t);
                true
            }
            None => false,
        }
    }

    /// Builds the noise library for this configuration (once): a long background trace with
    /// Poisson night-sky photoelectrons, Irwin–Hall(4) electronic noise, and the NSB mean level
    /// removed, drawn from its own seeded stream.
    fn ensure_noise_bank(&mut self, cfg: &SimConfig) {
        let key = (cfg.nsb_rate_ghz.to_bits(), cfg.noise_pe.to_bits(), cfg.seed);
        if self.noise_key == Some(key) {
            return;
        }
        let mut rng = Rng::new(cfg.seed, u64::MAX);
        let mut bank = vec![0.0f32; NOISE_BANK_SAMPLES];
        let span = NOISE_BANK_SAMPLES as f64 * SAMPLE_NS;
        let n_nsb = rng.poisson(cfg.nsb_rate_ghz * span);
        for _ in 0..n_nsb {
            let t = rng.uniform() * span;
            let first = ((t + PULSE_T0_NS) / SAMPLE_NS).ceil().max(0.0) as usize;
            let last = (((t + PULSE_END_NS) / SAMPLE_NS).floor() as usize).min(NOISE_BANK_SAMPLES - 1);
            for (s, b) in bank.iter_mut().enumerate().take(last + 1).skip(first) {
                let i = ((s as f64 * SAMPLE_NS - t - PULSE_T0_NS) / PULSE_STEP_NS + 0.5) as usize;
                if let Some(a) = self.pulse.get(i) {
                    *b += *a;
                }
            }
        }
        let mean_level = (cfg.nsb_rate_ghz * SAMPLE_NS) as f32;
        for b in bank.iter_mut() {
            let irwin_hall = rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform() - 2.0;
            *b += (cfg.noise_pe * irwin_hall * 3f64.sqrt()) as f32 - mean_level;
        }
        self.noise_bank = bank;
        self.noise_key = Some(key);
    }

    /// The photoelectron-weighted centroid (m) of the last image's Cherenkov light.
    fn signal_centroid(&self) -> (f64, f64) {
        let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (p, &n) in self.signal.iter().enumerate().filter(|(_, &n)| n > 0) {
            let (x, y) = (self.geom.pix_x[p], self.geom.pix_y[p]);
            sum += n as f64;
            sx += n as f64 * x;
            sy += n as f64 * y;
        }
        if sum > 0.0 {
            (sx / sum, sy / sum)
        } else {
            (f64::NAN, f64::NAN)
        }
    }

    /// A camera readout without Cherenkov light (a pedestal event): the background of the
    /// configuration alone, event `index` of its own seeded stream, into `waveforms`.
    pub fn background(&mut self, cfg: &SimConfig, index: u64, waveforms: &mut [f32]) {
        assert_eq!(waveforms.len(), self.geom.n_pixels() * N_SAMPLES);
        self.ensure_noise_bank(cfg);
        let mut rng = Rng::new(cfg.seed ^ 0x5bd1_e995_u64 << 17, index);
        waveforms.fill(0.0);
        for p in 0..self.geom.n_pixels() {
            let offset = (rng.next_u64() % (NOISE_BANK_SAMPLES - N_SAMPLES) as u64) as usize;
            waveforms[p * N_SAMPLES..(p + 1) * N_SAMPLES].copy_from_slice(&self.noise_bank[offset..offset + N_SAMPLES]);
        }
    }

    /// Simulates event `index` of the configured run into `waveforms` (pixel-major,
    /// 1296 × 50, overwritten) and returns its truth.
    pub fn simulate(&mut self, cfg: &SimConfig, index: u64, waveforms: &mut [f32]) -> Shower {
        let source = (cfg.source_offset_deg * metres_per_degree(), 0.0);
        self.simulate_at(cfg, index, source, waveforms)
    }

    /// Like [`Simulator::simulate`], with the source (or, for a view cone, the cone's centre)
    /// at camera position `centre_m` (m) instead of `source_offset_deg` along +x. Observation
    /// runs use it: the source drifts in the camera as the telescope tracks, and diffuse
    /// protons are centred on the pointing. A shower that does not trigger gets no background
    /// (its waveforms are never read).
    pub fn simulate_at(&mut self, cfg: &SimConfig, index: u64, centre_m: (f64, f64), waveforms: &mut [f32]) -> Shower {
        assert_eq!(waveforms.len(), self.geom.n_pixels() * N_SAMPLES);
        self.ensure_noise_bank(cfg);
        let mut rng = Rng::new(cfg.seed, index);
        waveforms.fill(0.0);
        self.signal.fill(0);
        let m_deg = metres_per_degree();
        let energy = rng.power_law(cfg.energy_min_tev, cfg.energy_max_tev, cfg.spectral_index);
        let r_core = cfg.max_impact_m * rng.uniform().sqrt();
        let phi_core = rng.uniform() * std::f64::consts::TAU;
        let (core_x, core_y) = (r_core * phi_core.cos(), r_core * phi_core.sin());
        let (mut src_x, mut src_y) = centre_m;
        if cfg.viewcone_deg > 0.0 {
            let r = cfg.viewcone_deg * m_deg * rng.uniform().sqrt();
            let a = rng.uniform() * std::f64::consts::TAU;
            src_x += r * a.cos();
            src_y += r * a.sin();
        }
        let h_max = h_max_m(energy);
        let disp = (r_core / h_max).atan().to_degrees() * m_deg;
        let t0 = 60.0 + rng.normal();
        let light = ImageGeometry { source: (src_x, src_y), disp_m: disp, azimuth: phi_core, impact_m: r_core };
        let n_pe = self.render(cfg, &mut rng, energy, &light, t0, waveforms);
        let triggered = self.trigger_and_background(cfg, &mut rng, waveforms);
        Shower {
            event_id: index,
            primary_id: cfg.particle.primary_id(),
            energy_tev: energy,
            core_x_m: core_x,
            core_y_m: core_y,
            impact_m: r_core,
            true_x_m: src_x,
            true_y_m: src_y,
            h_max_m: h_max,
            n_photoelectrons: n_pe,
            triggered,
            centroid_m: self.signal_centroid(),
        }
    }

    /// Simulates event `index` as seen by several telescopes pointing the same way at
    /// `pointing` (alt, az in rad): one shower (energy, direction, core within `max_impact_m` of
    /// the array centre, shower maximum), then one image per telescope, its geometry exact in
    /// ctapipe's frames: the source where the shower direction falls in the camera, the
    /// centroid where the shower maximum is seen from that telescope, the light pool and the
    /// image shape scaled by that telescope's distance to the shower axis. Each telescope's
    /// photoelectrons and background come from its own stream. `telescopes` are (tel_id, ground
    /// position in m: x north, y west, z up); `waveforms` has one buffer per telescope.
    pub fn simulate_stereo(
        &mut self,
        cfg: &SimConfig,
        index: u64,
        pointing: (f64, f64),
        telescopes: &[(u16, [f64; 3])],
        waveforms: &mut [Vec<f32>],
    ) -> StereoShower {
        let source = (cfg.source_offset_deg * metres_per_degree(), 0.0);
        self.simulate_stereo_at(cfg, index, source, pointing, telescopes, waveforms)
    }

    /// Like [`Simulator::simulate_stereo`], with the source (or the view cone's centre) at
    /// camera position `centre_m` (m): stereo observation runs, where the source drifts in the
    /// camera as the telescopes track.
    pub fn simulate_stereo_at(
        &mut self,
        cfg: &SimConfig,
        index: u64,
        centre_m: (f64, f64),
        pointing: (f64, f64),
        telescopes: &[(u16, [f64; 3])],
        waveforms: &mut [Vec<f32>],
    ) -> StereoShower {
        use crate::astro::{altaz_to_camera_rad, camera_to_altaz_rad};
        use crate::reco::stereo::{distance_to_line, ground_direction, sky_direction};
        assert_eq!(telescopes.len(), waveforms.len());
        self.ensure_noise_bank(cfg);
        let mut rng = Rng::new(cfg.seed, index);
        let m_deg = metres_per_degree();
        let f = EQUIVALENT_FOCAL_LENGTH_M;
        let energy = rng.power_law(cfg.energy_min_tev, cfg.energy_max_tev, cfg.spectral_index);
        let r_core = cfg.max_impact_m * rng.uniform().sqrt();
        let phi_core = rng.uniform() * std::f64::consts::TAU;
        let core = [r_core * phi_core.cos(), r_core * phi_core.sin(), 0.0];
        let (mut src_x, mut src_y) = centre_m;
        if cfg.viewcone_deg > 0.0 {
            let r = cfg.viewcone_deg * m_deg * rng.uniform().sqrt();
            let a = rng.uniform() * std::f64::consts::TAU;
            src_x += r * a.cos();
            src_y += r * a.sin();
        }
        let t0 = 60.0 + rng.normal();
        let direction = camera_to_altaz_rad(src_x, src_y, f, pointing.0, pointing.1);
        let axis = ground_direction(direction.0, direction.1);
        let h_max = h_max_m(energy);
        let shower_max: [f64; 3] = std::array::from_fn(|k| core[k] + h_max / axis[2] * axis[k]);
        let mut views = Vec::with_capacity(telescopes.len());
        for (&(tel_id, position), wf) in telescopes.iter().zip(waveforms.iter_mut()) {
            assert_eq!(wf.len(), self.geom.n_pixels() * N_SAMPLES);
            let seen: [f64; 3] = std::array::from_fn(|k| shower_max[k] - position[k]);
            let (alt, az) = sky_direction(seen);
            let centroid = altaz_to_camera_rad(alt, az, f, pointing.0, pointing.1);
            let (dx, dy) = (centroid.0 - src_x, centroid.1 - src_y);
            let impact = distance_to_line(position, core, axis);
            let light =
                ImageGeometry { source: (src_x, src_y), disp_m: dx.hypot(dy), azimuth: dy.atan2(dx), impact_m: impact };
            let mut tel_rng = Rng::new(cfg.seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(tel_id as u64 + 1), index);
            wf.fill(0.0);
            self.signal.fill(0);
            let n_photoelectrons = self.render(cfg, &mut tel_rng, energy, &light, t0, wf);
            let triggered = self.trigger_and_background(cfg, &mut tel_rng, wf);
            let ground = (position[0] - core[0]).hypot(position[1] - core[1]);
            let centroid_m = self.signal_centroid();
            views.push(TelescopeView { tel_id, impact_m: ground, n_photoelectrons, triggered, centroid_m });
        }
        StereoShower {
            event_id: index,
            primary_id: cfg.particle.primary_id(),
            energy_tev: energy,
            alt_rad: direction.0,
            az_rad: direction.1.rem_euclid(std::f64::consts::TAU),
            core_x_m: core[0],
            core_y_m: core[1],
            true_x_m: src_x,
            true_y_m: src_y,
            h_max_m: h_max,
            axis_distance_m: distance_to_line([0.0; 3], core, axis),
            telescopes: views,
        }
    }

    /// Draws the Cherenkov photoelectrons of one image into `waveforms` (and the pixel counts
    /// the trigger looks at); returns how many landed in the camera.
    fn render(
        &mut self,
        cfg: &SimConfig,
        rng: &mut Rng,
        energy: f64,
        light: &ImageGeometry,
        t0: f64,
        waveforms: &mut [f32],
    ) -> u64 {
        let m_deg = metres_per_degree();
        let ImageGeometry { source: (src_x, src_y), disp_m: disp, azimuth: phi_core, impact_m: r_core } = *light;
        let mut n_pe = 0u64;
        match cfg.particle {
            Particle::Gamma => {
                let pool = if r_core < 130.0 { 1.0 } else { (-(r_core - 130.0) / 70.0).exp() };
                let mean = 120.0 * energy.powf(1.05) * pool;
                let (cx, cy) = (src_x + disp * phi_core.cos(), src_y + disp * phi_core.sin());
                let (ux, uy) = (phi_core.cos(), phi_core.sin());
                let log_e = (1.0 + energy / 0.3).ln();
                let length = (0.10 + 0.045 * log_e * (1.0 + r_core / 300.0)) * m_deg;
                let width = (0.035 + 0.012 * log_e) * m_deg;
                let gradient = (0.6 + 0.045 * r_core) / m_deg; // ns per m in the camera
                for _ in 0..rng.poisson(mean) {
                    let along = rng.gamma4(length / 2.0) - 2.0 * length;
                    let across = width * rng.normal();
                    let (x, y) = (cx + along * ux - across * uy, cy + along * uy + across * ux);
                    let t = t0 + gradient * along + 0.8 * rng.normal();
                    n_pe += self.deposit(waveforms, x, y, t) as u64;
                }
            }
            Particle::Proton => {
                let pool = if r_core < 160.0 { 1.0 } else { (-(r_core - 160.0) / 90.0).exp() };
                let mean = 45.0 * energy.powf(1.1) * pool;
                let azimuth = phi_core + 40f64.to_radians() * rng.normal();
                let (cx, cy) = (src_x + disp * azimuth.cos(), src_y + disp * azimuth.sin());
                // About 60% of proton showers put most of their light in an electromagnetic
                // cascade from an early neutral pion: a gamma-like core, somewhat wider and
                // less regular, pointing roughly away from the core; the rest of the light goes
                // to hadronic sub-showers. These make gamma/hadron separation hard, as it is.
                let em_fraction = if rng.uniform() < 0.6 { 0.7 + 0.25 * rng.uniform() } else { 0.0 };
                if em_fraction > 0.0 {
                    let log_e = (1.0 + energy / 0.6).ln();
                    let length = (0.11 + 0.05 * log_e * (1.0 + r_core / 300.0)) * m_deg * (1.0 + 0.3 * rng.uniform());
                    let width = (0.035 + 0.012 * log_e) * m_deg * (1.0 + 0.35 * rng.uniform());
                    let (ux, uy) = (azimuth.cos(), azimuth.sin());
                    let gradient = (0.6 + 0.045 * r_core) / m_deg * (0.5 + rng.uniform());
                    for _ in 0..rng.poisson(mean * em_fraction) {
                        let along = rng.gamma4(length / 2.0) - 2.0 * length;
                        let across = width * rng.normal();
                        let (x, y) = (cx + along * ux - across * uy, cy + along * uy + across * ux);
                        let t = t0 + gradient * along + 1.2 * rng.normal();
                        n_pe += self.deposit(waveforms, x, y, t) as u64;
                    }
                }
                let hadronic = mean * (1.0 - em_fraction);
                let n_sub = 1 + rng.poisson(1.2) as usize;
                let mut subs = Vec::with_capacity(n_sub);
                let mut total_weight = 0.0;
                for _ in 0..n_sub {
                    let w = rng.exponential(1.0);
                    total_weight += w;
                    let a = rng.uniform() * std::f64::consts::PI;
                    subs.push((
                        w,
                        cx + 0.35 * m_deg * rng.normal(),
                        cy + 0.35 * m_deg * rng.normal(),
                        (a.cos(), a.sin()),
                        (0.18 + 0.32 * rng.uniform()) * m_deg,
                        (0.08 + 0.12 * rng.uniform()) * m_deg,
                        (rng.uniform() * 4.0 - 2.0) / m_deg,
                    ));
                }
                for (w, sx, sy, (ux, uy), length, width, gradient) in subs {
                    for _ in 0..rng.poisson(hadronic * w / total_weight) {
                        let along = length * rng.normal();
                        let across = width * rng.normal();
                        let (x, y) = (sx + along * ux - across * uy, sy + along * uy + across * ux);
                        let t = t0 + gradient * along + 2.0 * rng.normal();
                        n_pe += self.deposit(waveforms, x, y, t) as u64;
                    }
                }
            }
        }
        n_pe
    }

    /// Decides the trigger on the Cherenkov light alone (a pixel plus its neighbours) and, for a
    /// triggered event, adds the background.
    fn trigger_and_background(&mut self, cfg: &SimConfig, rng: &mut Rng, waveforms: &mut [f32]) -> bool {
        // Trigger on the Cherenkov light alone: a pixel plus its neighbours.
        let triggered = (0..self.geom.n_pixels()).any(|p| {
            let s = self.signal[p] + self.geom.neighbors(p).iter().map(|&q| self.signal[q as usize]).sum::<u32>();
            s as f64 >= cfg.trigger_pe
        });
        // Background: each pixel adds 50 consecutive samples of the noise library from a random
        // offset (the library holds ~200 ms of background, so repeats are rare and harmless).
        // Each event draws from its own stream, so skipping this for an event nobody records
        // changes no other event.
        for p in 0..if triggered { self.geom.n_pixels() } else { 0 } {
            let offset = (rng.next_u64() % (NOISE_BANK_SAMPLES - N_SAMPLES) as u64) as usize;
            let noise = &self.noise_bank[offset..offset + N_SAMPLES];
            for (w, n) in waveforms[p * N_SAMPLES..(p + 1) * N_SAMPLES].iter_mut().zip(noise) {
                *w += n;
            }
        }
        triggered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{clean, extract, params};

    fn config(particle: Particle) -> SimConfig {
        SimConfig {
            particle,
            energy_min_tev: 1.0,
            energy_max_tev: 100.0,
            spectral_index: -2.0,
            max_impact_m: 300.0,
            viewcone_deg: if particle == Particle::Gamma { 0.0 } else { 4.0 },
            source_offset_deg: 0.7,
            nsb_rate_ghz: 0.05,
            noise_pe: 0.3,
            trigger_pe: 25.0,
            seed: 1,
        }
    }

    /// (mean width/length, mean fraction of events where log size tracks log energy)
    fn run(particle: Particle, n: u64) -> Vec<(f64, params::ImageParameters)> {
        let mut sim = Simulator::new(CameraGeometry::digicam());
        let cfg = config(particle);
        let geom = CameraGeometry::digicam();
        let corr = extract::integration_correction(&pulse::reference_table(), 0.1, SAMPLE_NS, 7, 3);
        let window = extract::Window { width: 7, shift: 3, sample_ns: SAMPLE_NS, correction: corr };
        let mut wf = vec![0.0f32; 1296 * N_SAMPLES];
        let (mut q, mut t, mut m) = (vec![0.0f32; 1296], vec![0.0f32; 1296], vec![false; 1296]);
        let cuts = clean::Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
        let thr = vec![8.0; 1296];
        let mut out = Vec::new();
        for i in 0..n {
            let shower = sim.simulate(&cfg, i, &mut wf);
            if !shower.triggered {
                continue;
            }
            extract::local_peak_window_sum(&wf, N_SAMPLES, &window, &mut q, &mut t);
            clean::tailcuts_clean(&geom, &q, &thr, &cuts, &mut m);
            clean::time_delta_clean(&geom, &t, 1, 8.0, &mut m);
            if let Some(p) = params::image_parameters(&geom, &q, &t, &m) {
                if p.hillas.intensity > 100.0 && p.leakage_intensity_width_2 < 0.2 {
                    out.push((shower.energy_tev, p));
                }
            }
        }
        out
    }

    #[test]
    fn same_seed_same_bytes_and_physics_that_can_be_learned() {
        let mut a = Simulator::new(CameraGeometry::digicam());
        let mut b = Simulator::new(CameraGeometry::digicam());
        let (mut wa, mut wb) = (vec![0.0f32; 1296 * 50], vec![0.0f32; 1296 * 50]);
        let cfg = config(Particle::Gamma);
        assert_eq!(a.simulate(&cfg, 3, &mut wa), b.simulate(&cfg, 3, &mut wb));
        assert_eq!(wa, wb);

        let gammas = run(Particle::Gamma, 400);
        let protons = run(Particle::Proton, 1500);
        assert!(gammas.len() > 50 && protons.len() > 50, "{} {}", gammas.len(), protons.len());
        let mean = |v: &[(f64, params::ImageParameters)], f: &dyn Fn(&params::ImageParameters) -> f64| {
            v.iter().map(|(_, p)| f(p)).sum::<f64>() / v.len() as f64
        };
        let gw = mean(&gammas, &|p| p.hillas.width);
        let pw = mean(&protons, &|p| p.hillas.width);
        assert!(pw > 1.5 * gw, "proton images must be wider: gamma {gw}, proton {pw}");
        // Size follows energy for gammas (correlation of logs).
        let xs: Vec<f64> = gammas.iter().map(|(e, _)| e.ln()).collect();
        let ys: Vec<f64> = gammas.iter().map(|(_, p)| p.hillas.intensity.ln()).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / xs.len() as f64, ys.iter().sum::<f64>() / ys.len() as f64);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let r = cov
            / (xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>() * ys.iter().map(|y| (y - my).powi(2)).sum::<f64>())
                .sqrt();
        assert!(r > 0.6 && r < 0.99, "log size vs log energy correlation {r}");
    }

    /// Stereo images are geometrically right: the same images through R1 → DL1 and ctapipe's
    /// HillasReconstructor give back the shower's direction and core (a wrong frame convention
    /// anywhere gives errors of degrees and hundreds of metres), and the telescopes' own
    /// streams make their images differ.
    #[test]
    fn stereo_images_reconstruct_to_the_true_direction_and_core() {
        use crate::reco::stereo::{hillas_reconstructor, StereoImage};
        let geom = CameraGeometry::digicam();
        let mut sim = Simulator::new(geom.clone());
        let cfg = SimConfig {
            energy_min_tev: 2.0,
            energy_max_tev: 50.0,
            max_impact_m: 200.0,
            source_offset_deg: 0.6,
            ..config(Particle::Gamma)
        };
        let pointing = (70f64.to_radians(), 30f64.to_radians());
        let telescopes: Vec<(u16, [f64; 3])> =
            crate::instrument::TELESCOPES.iter().map(|t| (t.tel_id, t.position_m)).collect();
        let corr = extract::integration_correction(&pulse::reference_table(), 0.1, SAMPLE_NS, 7, 3);
        let window = extract::Window { width: 7, shift: 3, sample_ns: SAMPLE_NS, correction: corr };
        let cuts = clean::Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
        let thr = vec![8.0; 1296];
        let mut waveforms = vec![vec![0.0f32; 1296 * N_SAMPLES]; 2];
        let (mut q, mut t, mut m) = (vec![0.0f32; 1296], vec![0.0f32; 1296], vec![false; 1296]);
        let (mut direction_errors, mut core_errors) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let shower = sim.simulate_stereo(&cfg, i, pointing, &telescopes, &mut waveforms);
            if !shower.telescopes.iter().all(|v| v.triggered) {
                continue;
            }
            assert_ne!(waveforms[0], waveforms[1]);
            let mut images = Vec::new();
            for (view, wf) in shower.telescopes.iter().zip(&waveforms) {
                extract::local_peak_window_sum(wf, N_SAMPLES, &window, &mut q, &mut t);
                clean::tailcuts_clean(&geom, &q, &thr, &cuts, &mut m);
                clean::time_delta_clean(&geom, &t, 1, 8.0, &mut m);
                let Some(p) = params::image_parameters(&geom, &q, &t, &m) else { break };
                if p.hillas.intensity < 200.0 || p.leakage_intensity_width_2 > 0.1 {
                    break;
                }
                let position = telescopes.iter().find(|(id, _)| *id == view.tel_id).unwrap().1;
                images.push(StereoImage {
                    tel_id: view.tel_id,
                    position_m: position,
                    pointing_alt_rad: pointing.0,
                    pointing_az_rad: pointing.1,
                    focal_length_m: EQUIVALENT_FOCAL_LENGTH_M,
                    camera_radius_m: geom.radius(),
                    x_m: p.hillas.x,
                    y_m: p.hillas.y,
                    psi_rad: p.hillas.psi,
                    intensity: p.hillas.intensity,
                    length_m: p.hillas.length,
                    width_m: p.hillas.width,
                });
            }
            if images.len() < 2 {
                continue;
            }
            let Some(g) = hillas_reconstructor(&images, pointing, 0.0) else { continue };
            let (a, b) = (
                crate::reco::stereo::ground_direction(g.alt_rad, g.az_rad),
                crate::reco::stereo::ground_direction(shower.alt_rad, shower.az_rad),
            );
            let cos = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]).clamp(-1.0, 1.0);
            direction_errors.push(cos.acos().to_degrees());
            core_errors.push((g.core_x_m - shower.core_x_m).hypot(g.core_y_m - shower.core_y_m));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let n = direction_errors.len();
        let (direction, core) = (median(&mut direction_errors), median(&mut core_errors));
        println!("{n} stereo events: median direction error {direction:.3} deg, core error {core:.1} m");
        assert!(n >= 30, "{n}");
        assert!(direction < 0.1, "{direction}");
        assert!(core < 15.0, "{core}");
    }
}
