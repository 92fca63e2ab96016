# Stand-in for the ESP32's `network` module (tests only).
STA_IF = 0
AP_IF = 1
# Status codes as the micropython-esp32-stubs give them (ESP-IDF 5); 203 is both ASSOC_FAIL and
# CONNECT_FAIL there. This port version has no STAT_BEACON_TIMEOUT, as an older one would not.
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204


class WLAN:
    def __init__(self, which):
        self.which = which
        self.code = STAT_IDLE

    def status(self):
        return self.code
