# Simulated site (PV, house, EV, home battery, grid meter) for `make sim` and `make bench`.
# Runs inside the MicroPython Unix port next to the firmware, and also under CPython (the
# benchmark's baseline controllers use the very same models). Never deployed to a board.
#
# Use:
#   from tools.simsite.site import Site, GRID_VALUE_IDS
#   from tools.simsite.profile import Profile
#   site = Site(Profile.load(path, loop=True))      # or Site() for the built-in 10 kWp day
#   site.step(dt_ms, offered_ma, phases)             # phases: 0 contactor open, 1, 3
#   slot.update(site.grid_values(), now_ms)          # values in GRID_VALUE_IDS order
#   site.ev.connected = False                        # unplug
# Optional: Site(..., battery=Battery(...)) and site.battery_values() (BATTERY_VALUE_IDS).
