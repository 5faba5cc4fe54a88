"""``dsh plot``: the strip charts of the local dshd's history as a PNG (cli.py;
data.py prepares the series, render.py draws them with matplotlib)."""
