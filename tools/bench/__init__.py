# The control-quality benchmark (make bench). mp_day.py and setting.py run under MicroPython.
