"""Training losses, one home for every kind (as BasicSR keeps `losses/` beside `models/`):
`pixel` (L1 + 3D SSIM), `adversarial` (SRGAN's BCE and UDEAN's least-squares terms),
`perceptual` (VGG19 feature MSE) and `udean` (UDEAN's objective, eqs. 1–10). The networks
are in mrisr.models; the tasks that weigh and step these losses are in mrisr.train."""
