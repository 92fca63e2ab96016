# Runs first after every reset. Deliberately empty of anything that can fail: main.py (which
# starts firmware/start.py) reports errors; the REPL stays usable whatever happens there.
import gc

gc.collect()
