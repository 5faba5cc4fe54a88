"""Every sensor dshd knows, by name (the names in ``[sensor:NAME]``)."""

from __future__ import annotations

from .base import Sensor
from .gpu import GPU
from .psutil_sensors import PSUTIL_SENSORS

_CLASSES: tuple[type[Sensor], ...] = (*PSUTIL_SENSORS, GPU)
SENSORS: dict[str, Sensor] = {cls.name: cls() for cls in _CLASSES}
TIME_INTERVAL = "time_interval"  # the option every sensor takes (FrUCToSA's name), in seconds
TIMEOUT = "timeout"  # dshd's: seconds a reading may take before the sensor is down


def describe(sensor: Sensor) -> str:
    """``dshd --list-sensors``'s paragraph for one sensor."""
    why_not = sensor.available()
    state = "available" if why_not is None else f"unavailable: {why_not}"
    lines = [f"{sensor.name}  ({state})", f"    {sensor.help}",
             f"    default {TIME_INTERVAL} = {sensor.interval:g} s"]  # fmt: skip
    for field in sensor.fields:
        lines.append(f"    field {field.name} [{field.unit}]: {field.help}")
    for option in sensor.options:
        default = ", ".join(option.default) or "none"
        if option.per_instance:
            default += "; each value is a reading of its own, up or down alone"
        many = " (repeatable)" if option.repeatable else ""
        takes = f" ({'/'.join(option.choices)})" if option.choices else ""
        lines.append(f"    option {option.name}{many}: {option.help}{takes}; default {default}")
    return "\n".join(lines)


def list_sensors() -> str:
    return "\n\n".join(describe(s) for s in SENSORS.values()) + "\n"
