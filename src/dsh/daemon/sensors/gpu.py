"""NVIDIA GPUs: through NVML when ``nvidia-ml-py`` is importable, else
``nvidia-smi --query-gpu=... --format=csv``; unavailable where neither is.

Per GPU (label gpu: its index, and name): utilisation, memory used and
total, temperature, power draw. nvidia-smi prints ``[N/A]`` (or
``[Not Supported]``) for what a board does not report: that value is left
out, not read as 0.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from .base import Field, Options, Sensor, Value

QUERY = ("index", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu",
         "power.draw")  # fmt: skip
NVIDIA_SMI_TIMEOUT = 10.0  # seconds; the sensor's own deadline is what the daemon enforces
_MIB = 1024 * 1024


class GPU(Sensor):
    name = "GPU"
    help = "NVIDIA GPUs via NVML (nvidia-ml-py) or nvidia-smi (labels gpu, name)"
    fields = (Field("utilization", "percent", "busy share of the GPU"),
              Field("memory_used", "bytes", "memory in use"),
              Field("memory_total", "bytes", "memory on the board"),
              Field("temperature", "celsius", "core temperature"),
              Field("power", "watts", "power draw"))  # fmt: skip
    interval = 10.0

    def available(self) -> str | None:
        if importlib.util.find_spec("pynvml") is not None:
            try:
                import pynvml

                pynvml.nvmlInit()
                pynvml.nvmlShutdown()
                return None
            except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
                why = f"NVML: {exc}"
        else:
            why = "nvidia-ml-py is not installed"
        if shutil.which("nvidia-smi") is None:
            return f"no NVIDIA GPU ({why}; nvidia-smi not found)"
        return None

    @staticmethod
    def parse_csv(text: str) -> list[Value]:
        """nvidia-smi's ``--format=csv,noheader,nounits`` output for QUERY."""
        out: list[Value] = []
        for line in text.splitlines():
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != len(QUERY) or not cells[0].isdigit():
                continue
            labels = (("gpu", cells[0]), ("name", cells[1]))
            for field, cell, scale in (("utilization", cells[2], 1.0),
                                       ("memory_used", cells[3], _MIB),
                                       ("memory_total", cells[4], _MIB),
                                       ("temperature", cells[5], 1.0),
                                       ("power", cells[6], 1.0)):  # fmt: skip
                try:
                    out.append(Value(field, float(cell) * scale, labels))
                except ValueError:
                    pass  # [N/A], [Not Supported]
        return out

    @staticmethod
    def _nvml() -> list[Value]:
        import pynvml

        pynvml.nvmlInit()
        try:
            out: list[Value] = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                out += GPU._nvml_device(pynvml, i)
            return out
        finally:
            pynvml.nvmlShutdown()

    @staticmethod
    def _nvml_device(nvml: Any, index: int) -> list[Value]:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        labels = (("gpu", str(index)), ("name", name if isinstance(name, str) else name.decode()))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        readings: dict[str, Callable[[], Any]] = {
            "utilization": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            "memory_used": lambda: memory.used,
            "memory_total": lambda: memory.total,
            "temperature": lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            "power": lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,  # milliwatts
        }
        out = []
        for field, get in readings.items():
            try:
                out.append(Value(field, float(get()), labels))
            except nvml.NVMLError:
                pass  # not supported by this board
        return out

    def read(self, options: Options) -> list[Value]:
        if importlib.util.find_spec("pynvml") is not None:
            try:
                return self._nvml()
            except Exception:  # no driver for NVML: nvidia-smi may still answer
                if shutil.which("nvidia-smi") is None:
                    raise
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(QUERY)}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=True,
        )  # fmt: skip
        return self.parse_csv(done.stdout)
