//! Sky coordinates: camera ↔ horizontal (alt/az) ↔ equatorial (RA/Dec, ICRS/J2000).
//!
//! Camera → alt/az follows ctapipe's `CameraFrame → TelescopeFrame → AltAz` chain, which
//! sst1mpipe uses for `reco_alt/az`: an equidistant mapping (`fov_lat = x/f`, `fov_lon = y/f`,
//! in radians) and a rotation that takes the field-of-view origin to the pointing direction
//! (a positive `fov_lon` at the horizon is a larger azimuth).
//!
//! Alt/az → RA/Dec uses the mean sidereal time (IAU 1982, UT1 taken as UTC) and IAU 1976
//! precession back to J2000; nutation (≤ 20″), annual aberration (≤ 21″), polar motion and
//! refraction are left out. That is about 30″ at worst against astropy's full ICRS chain,
//! far below the SST-1M point-spread function (~0.1–0.2°), and the interop test measures it.
//! Both directions use the same model, so a position converted and back is exact to rounding.

/// The fixed observation time sst1mpipe uses for the RA/Dec of simulated events
/// (2022-11-01T02:00:00 UTC), as Unix seconds.
pub const MC_OBSTIME_UNIX_S: f64 = 1_667_268_000.0;

fn unit(lon: f64, lat: f64) -> [f64; 3] {
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn angles(v: [f64; 3]) -> (f64, f64) {
    let lon = v[1].atan2(v[0]);
    let lat = v[2].clamp(-1.0, 1.0).asin();
    (lon, lat)
}

/// A direction given as offsets (`lon`, `lat`, radians) from `origin` (`lon0`, `lat0`, radians)
/// → absolute spherical coordinates (radians).
fn offset_to_sky(lon: f64, lat: f64, lon0: f64, lat0: f64) -> (f64, f64) {
    let v = unit(lon, lat);
    // Tilt the origin up to latitude lat0 (rotation about y), then turn it to longitude lon0.
    let (s, c) = lat0.sin_cos();
    let v = [v[0] * c - v[2] * s, v[1], v[0] * s + v[2] * c];
    let (s, c) = lon0.sin_cos();
    angles([v[0] * c - v[1] * s, v[0] * s + v[1] * c, v[2]])
}

/// The inverse of [`offset_to_sky`].
fn sky_to_offset(lon: f64, lat: f64, lon0: f64, lat0: f64) -> (f64, f64) {
    let v = unit(lon, lat);
    let (s, c) = lon0.sin_cos();
    let v = [v[0] * c + v[1] * s, -v[0] * s + v[1] * c, v[2]];
    let (s, c) = lat0.sin_cos();
    angles([v[0] * c + v[2] * s, v[1], -v[0] * s + v[2] * c])
}

pub fn wrap_360(deg: f64) -> f64 {
    let d = deg.rem_euclid(360.0);
    if d >= 360.0 {
        0.0
    } else {
        d
    }
}

/// A camera-frame position (m) → (alt, az) in degrees, az in [0, 360).
pub fn camera_to_altaz(x_m: f64, y_m: f64, focal_m: f64, pointing_alt_deg: f64, pointing_az_deg: f64) -> (f64, f64) {
    let (alt, az) = camera_to_altaz_rad(x_m, y_m, focal_m, pointing_alt_deg.to_radians(), pointing_az_deg.to_radians());
    (alt.to_degrees(), wrap_360(az.to_degrees()))
}

/// ctapipe's CameraFrame → AltAz in radians: `fov_lat = x / f`, `fov_lon = y / f` (no camera
/// rotation), then the sky offset from the pointing. Returns (alt, az), az in (−π, π].
pub fn camera_to_altaz_rad(x_m: f64, y_m: f64, focal_m: f64, pointing_alt: f64, pointing_az: f64) -> (f64, f64) {
    let (az, alt) = offset_to_sky(y_m / focal_m, x_m / focal_m, pointing_az, pointing_alt);
    (alt, az)
}

/// The inverse of [`camera_to_altaz_rad`]: (alt, az) in radians → camera-frame position (m).
pub fn altaz_to_camera_rad(alt: f64, az: f64, focal_m: f64, pointing_alt: f64, pointing_az: f64) -> (f64, f64) {
    let (lon, lat) = sky_to_offset(az, alt, pointing_az, pointing_alt);
    (lat * focal_m, lon * focal_m)
}

/// ctapipe's TelescopeFrame: (alt, az) in degrees → (fov_lon, fov_lat) in degrees, the offsets
/// from the pointing (what sst1mpipe writes as DL3 DETY and DETX).
pub fn altaz_to_fov_deg(alt_deg: f64, az_deg: f64, pointing_alt_deg: f64, pointing_az_deg: f64) -> (f64, f64) {
    let (lon, lat) = sky_to_offset(
        az_deg.to_radians(),
        alt_deg.to_radians(),
        pointing_az_deg.to_radians(),
        pointing_alt_deg.to_radians(),
    );
    (lon.to_degrees(), lat.to_degrees())
}

/// (alt, az) in degrees → camera-frame position (m); the inverse of [`camera_to_altaz`].
pub fn altaz_to_camera(
    alt_deg: f64,
    az_deg: f64,
    focal_m: f64,
    pointing_alt_deg: f64,
    pointing_az_deg: f64,
) -> (f64, f64) {
    altaz_to_camera_rad(
        alt_deg.to_radians(),
        az_deg.to_radians(),
        focal_m,
        pointing_alt_deg.to_radians(),
        pointing_az_deg.to_radians(),
    )
}

/// The angular distance between two directions (degrees in, degrees out).
pub fn angular_separation_deg(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (l1, b1, l2, b2) = (lon1.to_radians(), lat1.to_radians(), lon2.to_radians(), lat2.to_radians());
    let (sdl, cdl) = (l2 - l1).sin_cos();
    let num = ((b2.cos() * sdl).powi(2) + (b1.cos() * b2.sin() - b1.sin() * b2.cos() * cdl).powi(2)).sqrt();
    let den = b1.sin() * b2.sin() + b1.cos() * b2.cos() * cdl;
    num.atan2(den).to_degrees()
}

/// The position angle (deg, north through east, in [0, 360)) of direction 2 seen from
/// direction 1 (lon/lat in degrees, e.g. RA/Dec).
pub fn position_angle_deg(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (l1, b1, l2, b2) = (lon1.to_radians(), lat1.to_radians(), lon2.to_radians(), lat2.to_radians());
    let dl = l2 - l1;
    let y = dl.sin() * b2.cos();
    let x = b1.cos() * b2.sin() - b1.sin() * b2.cos() * dl.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// Julian centuries of TT-ish time since J2000.0 for a Unix time (UTC; the ~69 s TT−UTC is
/// irrelevant for precession).
fn centuries_since_j2000(unix_s: f64) -> f64 {
    let jd = unix_s / 86400.0 + 2_440_587.5;
    (jd - 2_451_545.0) / 36_525.0
}

/// Greenwich mean sidereal time (radians) at a Unix time, UT1 taken as UTC.
fn gmst_rad(unix_s: f64) -> f64 {
    let d = unix_s / 86400.0 + 2_440_587.5 - 2_451_545.0;
    let t = d / 36_525.0;
    let deg = 280.460_618_37 + 360.985_647_366_29 * d + 0.000_387_933 * t * t - t * t * t / 38_710_000.0;
    deg.rem_euclid(360.0).to_radians()
}

/// The IAU 1976 precession matrix from J2000 to the mean equator of date.
fn precession_matrix(unix_s: f64) -> [[f64; 3]; 3] {
    let t = centuries_since_j2000(unix_s);
    let arcsec = std::f64::consts::PI / 180.0 / 3600.0;
    let zeta = (2306.2181 * t + 0.30188 * t * t + 0.017998 * t * t * t) * arcsec;
    let z = (2306.2181 * t + 1.09468 * t * t + 0.018203 * t * t * t) * arcsec;
    let theta = (2004.3109 * t - 0.42665 * t * t - 0.041833 * t * t * t) * arcsec;
    let (sz, cz) = zeta.sin_cos();
    let (s_z, c_z) = z.sin_cos();
    let (st, ct) = theta.sin_cos();
    [
        [cz * ct * c_z - sz * s_z, -sz * ct * c_z - cz * s_z, -st * c_z],
        [cz * ct * s_z + sz * c_z, -sz * ct * s_z + cz * c_z, -st * s_z],
        [cz * st, -sz * st, ct],
    ]
}

fn apply(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn apply_transposed(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[0][i] * v[0] + m[1][i] * v[1] + m[2][i] * v[2])
}

/// The time reference of our DL3 files (GADF `MJDREFI` + `MJDREFF`, `TIMESYS = 'TT'`):
/// 2001-01-01T00:00:00 UTC expressed in TT (64.184 s after midnight TT), as H.E.S.S. does. `TIME`
/// is then TT seconds since that instant, which no leap second can make ambiguous.
pub const DL3_MJDREFI: i64 = 51910;
pub const DL3_MJDREFF: f64 = 0.000_742_870_370_370_241;
const UNIX_2001: f64 = 978_307_200.0;

/// TAI − UTC from each Unix time on (IERS Bulletin C; no leap second has been announced
/// after 2016-12-31).
const TAI_MINUS_UTC: [(f64, f64); 6] = [
    (915_148_800.0, 32.0),   // 1999-01-01
    (1_136_073_600.0, 33.0), // 2006-01-01
    (1_230_768_000.0, 34.0), // 2009-01-01
    (1_341_100_800.0, 35.0), // 2012-07-01
    (1_435_708_800.0, 36.0), // 2015-07-01
    (1_483_228_800.0, 37.0), // 2017-01-01
];

/// A Unix time (UTC) → DL3 `TIME` (TT seconds since the DL3 reference), or `None` before
/// 2001 (outside the leap-second table; no SST-1M data is that old).
pub fn unix_to_dl3_time(unix_s: f64) -> Option<f64> {
    if unix_s.is_nan() || unix_s < UNIX_2001 {
        return None;
    }
    let tai_utc = TAI_MINUS_UTC.iter().rev().find(|(from, _)| unix_s >= *from).map(|e| e.1)?;
    Some(unix_s - UNIX_2001 + (tai_utc - 32.0))
}

/// A Unix time (UTC) → seconds on the TAI scale since 1970-01-01T00:00:00 TAI (astropy's
/// `unix_tai`, the epoch of ctapipe's `ctao_high_res` timestamps), or `None` before 1999.
pub fn unix_to_unix_tai(unix_s: f64) -> Option<f64> {
    let tai_utc = TAI_MINUS_UTC.iter().rev().find(|(from, _)| unix_s >= *from).map(|e| e.1)?;
    Some(unix_s + tai_utc)
}

/// A TAI-based Unix time (such as the SST-1M camera clock) → the Unix (UTC) time of the same
/// instant; the inverse of [`unix_to_unix_tai`] away from the seconds of a leap.
pub fn unix_tai_to_unix(tai_s: f64) -> f64 {
    tai_s - (unix_to_unix_tai(tai_s).unwrap_or(tai_s) - tai_s)
}

/// A Unix time → (`YYYY-MM-DD`, `hh:mm:ss.sss`) in UTC, for the DATE-OBS style keywords.
pub fn utc_date_time(unix_s: f64) -> (String, String) {
    let secs = unix_s.floor();
    let nanos = ((unix_s - secs) * 1e9).round().min(999_999_999.0) as u32;
    match chrono::DateTime::from_timestamp(secs as i64, nanos) {
        Some(t) => (t.format("%Y-%m-%d").to_string(), t.format("%H:%M:%S%.3f").to_string()),
        None => (String::new(), String::new()),
    }
}

/// An observing site.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    pub lon_deg: f64,
    pub lat_deg: f64,
}

/// (alt, az) in degrees at `site` and Unix time → (RA, Dec) J2000 in degrees, RA in [0, 360).
pub fn altaz_to_radec(alt_deg: f64, az_deg: f64, site: Site, unix_s: f64) -> (f64, f64) {
    let (alt, az, lat) = (alt_deg.to_radians(), az_deg.to_radians(), site.lat_deg.to_radians());
    // Horizontal → hour angle and declination of date (azimuth from north through east).
    let sin_dec = alt.sin() * lat.sin() + alt.cos() * lat.cos() * az.cos();
    let dec = sin_dec.clamp(-1.0, 1.0).asin();
    let ha = (-az.sin() * alt.cos()).atan2(lat.cos() * alt.sin() - lat.sin() * alt.cos() * az.cos());
    let lst = gmst_rad(unix_s) + site.lon_deg.to_radians();
    let ra_of_date = lst - ha;
    let v = apply_transposed(&precession_matrix(unix_s), unit(ra_of_date, dec));
    let (ra, dec) = angles(v);
    (wrap_360(ra.to_degrees()), dec.to_degrees())
}

/// (RA, Dec) J2000 in degrees → (alt, az) in degrees at `site` and Unix time.
pub fn radec_to_altaz(ra_deg: f64, dec_deg: f64, site: Site, unix_s: f64) -> (f64, f64) {
    let v = apply(&precession_matrix(unix_s), unit(ra_deg.to_radians(), dec_deg.to_radians()));
    let (ra, dec) = angles(v);
    let lat = site.lat_deg.to_radians();
    let ha = gmst_rad(unix_s) + site.lon_deg.to_radians() - ra;
    let sin_alt = dec.sin() * lat.sin() + dec.cos() * lat.cos() * ha.cos();
    let alt = sin_alt.clamp(-1.0, 1.0).asin();
    let az = (-ha.sin() * dec.cos()).atan2(dec.sin() * lat.cos() - dec.cos() * lat.sin() * ha.cos());
    (alt.to_degrees(), wrap_360(az.to_degrees()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_of_view_offsets_are_the_camera_mapping_without_the_focal_length() {
        // A camera position maps to alt/az and back to fov_lat = x/f, fov_lon = y/f (ctapipe).
        for (x, y, alt0, az0) in [(0.1, -0.05, 62.0, 180.0), (-0.2, 0.15, 45.0, 10.0), (0.0, 0.3, 80.0, 359.0)] {
            let f = 5.6;
            let (alt, az) = camera_to_altaz(x, y, f, alt0, az0);
            let (lon, lat) = altaz_to_fov_deg(alt, az, alt0, az0);
            assert!((lat - (x / f).to_degrees()).abs() < 1e-10, "{lat}");
            assert!((lon - (y / f).to_degrees()).abs() < 1e-10, "{lon}");
            let offset = angular_separation_deg(az, alt, az0, alt0);
            let expected = ((x / f).cos() * (y / f).cos()).acos().to_degrees();
            assert!((offset - expected).abs() < 1e-9, "{offset} {expected}");
        }
    }

    #[test]
    fn dl3_time_counts_leap_seconds() {
        // 2022-11-01T00:00:00 UTC: 687,916,800 s of UTC calendar plus 5 leap seconds since 2001.
        let t = unix_to_dl3_time(1_667_260_800.0).unwrap();
        assert_eq!(t, 1_667_260_800.0 - 978_307_200.0 + 5.0);
        assert_eq!(unix_to_dl3_time(978_307_200.0), Some(0.0));
        assert_eq!(unix_to_dl3_time(900_000_000.0), None);
        assert_eq!(utc_date_time(1_667_260_800.25), ("2022-11-01".into(), "00:00:00.250".into()));
    }

    #[test]
    fn camera_offsets_follow_ctapipe_orientation() {
        // At the horizon looking north, +y (fov_lon) is a larger azimuth and +x (fov_lat) higher.
        let f = 5.6;
        let (alt, az) = camera_to_altaz(0.0, f * 1f64.to_radians(), f, 0.0, 0.0);
        assert!((alt).abs() < 1e-12 && (az - 1.0).abs() < 1e-9, "{alt} {az}");
        let (alt, az) = camera_to_altaz(f * 1f64.to_radians(), 0.0, f, 0.0, 0.0);
        assert!((alt - 1.0).abs() < 1e-9 && az.abs() < 1e-9, "{alt} {az}");
        // The camera centre is the pointing.
        let (alt, az) = camera_to_altaz(0.0, 0.0, f, 70.0, 180.0);
        assert!((alt - 70.0).abs() < 1e-12 && (az - 180.0).abs() < 1e-9);
    }

    #[test]
    fn camera_and_sky_transforms_invert_each_other() {
        for &(x, y) in &[(0.1, -0.05), (-0.2, 0.15), (0.0, 0.3)] {
            let (alt, az) = camera_to_altaz(x, y, 5.6, 62.0, 350.0);
            let (x2, y2) = altaz_to_camera(alt, az, 5.6, 62.0, 350.0);
            assert!((x - x2).abs() < 1e-12 && (y - y2).abs() < 1e-12);
            // (fov_lon, fov_lat) are spherical offsets: distance arccos(cos lat · cos lon).
            let d = angular_separation_deg(az, alt, 350.0, 62.0);
            let expected = ((x / 5.6f64).cos() * (y / 5.6f64).cos()).acos().to_degrees();
            assert!((d - expected).abs() < 1e-9, "{d} {expected}");
        }
        let site = Site { lon_deg: 14.78, lat_deg: 49.91 };
        let (alt, az) = radec_to_altaz(83.633, 22.0145, site, MC_OBSTIME_UNIX_S);
        let (ra, dec) = altaz_to_radec(alt, az, site, MC_OBSTIME_UNIX_S);
        assert!((ra - 83.633).abs() < 1e-9 && (dec - 22.0145).abs() < 1e-9, "{ra} {dec}");
    }
}
