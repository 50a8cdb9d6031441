"""ctapipe's CameraCalibrator + ImageProcessor on waveforms written by benches/image.rs.

Usage: python ctapipe_r1_dl1.py CAMERA.json WAVEFORMS.f32
CAMERA.json is `sst1mflow --json camera`; WAVEFORMS.f32 holds little-endian float32 R1
waveforms (event x 1296 x 50). Builds an SST-1M subarray description from our camera, runs the
sst1mpipe settings (LocalPeakWindowSum 7/3 with integration correction, tailcuts 8/4/2, camera
frame) and prints the events per second.
"""
import json, sys, time, numpy as np, astropy.units as u
from astropy.coordinates import EarthLocation
from traitlets.config import Config
from ctapipe.instrument import (SubarrayDescription, TelescopeDescription, OpticsDescription, CameraDescription,
                                CameraGeometry, CameraReadout, PixelShape, ReflectorShape, SizeType)
from ctapipe.calib import CameraCalibrator
from ctapipe.image import ImageProcessor
from ctapipe.containers import ArrayEventContainer, PixelStatus
cam = json.load(open(sys.argv[1]))
geom = CameraGeometry("DigiCam", np.arange(1296), np.array(cam["pix_x"])*u.m, np.array(cam["pix_y"])*u.m,
                      np.full(1296, cam["pix_area"])*u.m**2, pix_type=PixelShape.HEXAGON, pix_rotation=30*u.deg, cam_rotation=0*u.deg)
readout = CameraReadout(name="DigiCam", sampling_rate=0.25*u.GHz, reference_pulse_shape=np.array([cam["pulse"]["amplitude"]]),
                        reference_pulse_sample_width=0.1*u.ns, n_channels=1, n_pixels=1296, n_samples=50)
camera = CameraDescription(name="DigiCam", geometry=geom, readout=readout)
optics = OpticsDescription(name="SST-1M", size_type=SizeType.SST, reflector_shape=ReflectorShape.DAVIES_COTTON,
                           equivalent_focal_length=5.6*u.m, effective_focal_length=5.69705*u.m, mirror_area=9.418*u.m**2,
                           n_mirrors=1, n_mirror_tiles=18)
tel = TelescopeDescription(name="SST-1M", optics=optics, camera=camera)
loc = EarthLocation(lon=14.78250139*u.deg, lat=49.91244167*u.deg, height=511.195*u.m)
subarray = SubarrayDescription("sst1m", tel_positions={1: [0, 0, 0]*u.m}, tel_descriptions={1: tel}, reference_location=loc)
cfg = Config({"CameraCalibrator": {"image_extractor_type": "LocalPeakWindowSum"},
              "LocalPeakWindowSum": {"window_width": 7, "window_shift": 3, "apply_integration_correction": True},
              "ImageProcessor": {"use_telescope_frame": False, "image_cleaner_type": "TailcutsImageCleaner",
                                 "TailcutsImageCleaner": {"picture_threshold_pe": 8, "boundary_threshold_pe": 4,
                                                          "min_picture_neighbors": 2}}})
calib = CameraCalibrator(subarray, config=cfg)
proc = ImageProcessor(subarray, config=cfg)
wf = np.fromfile(sys.argv[2], dtype="<f4").reshape(-1, 1296, 50)
status = np.full(1296, np.uint8(PixelStatus.HIGH_GAIN_STORED))
gain0 = np.zeros(1296, dtype=np.int8)
def one(w):
    event = ArrayEventContainer()
    event.trigger.tels_with_trigger = np.array([1])
    r1 = event.r1.tel[1]
    r1.waveform = w[None]
    r1.selected_gain_channel = gain0
    r1.pixel_status = status.copy()
    calib(event); proc(event)
    return event.dl1.tel[1].parameters.hillas.intensity
one(wf[0])
t = time.perf_counter()
for w in wf: one(w)
print(len(wf) / (time.perf_counter() - t))
