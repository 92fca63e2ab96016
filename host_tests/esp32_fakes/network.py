# Stand-in for the ESP32's `network` module (tests only).
STA_IF = 0
AP_IF = 1


class WLAN:
    def __init__(self, which):
        self.which = which
