"""Remove a torchvision that cannot import against the installed torch.

timm depends on torchvision, and the registry's torchvision wheel for torch 2.13.0
is CUDA-linked: against the CPU-only torch it fails at import time, which also
breaks every package that probes for it (transformers among them). The core of
`scale` never needs torchvision, so an unusable one is uninstalled; timm
backbones then report a clear error (see README, "timm and torchvision").
"""
import subprocess
import sys

probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
if probe.returncode == 0:
    print("torchvision imports: timm backbones are available")
else:
    last = (probe.stderr.strip().splitlines() or ["not installed"])[-1]
    if "No module named" in last:
        print("torchvision absent: timm backbones unavailable (core unaffected)")
    else:
        print(f"torchvision cannot import ({last}); uninstalling it so the core and transformers work")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "--quiet", "torchvision"], check=True)
