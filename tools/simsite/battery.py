# Optional home battery with its own inverter controller that tries to hold the grid at 0 W:
# it charges from export and discharges into import, within its power limits and state of charge,
# and reacts with a first-order lag (tau_ms) like real hybrid inverters (a few seconds).
# Sign: power_w + = charging, - = discharging (DOMAIN 1).


class Battery:
    def __init__(self, capacity_wh=10000, max_charge_w=5000, max_discharge_w=5000, soc_pct=50,
                 min_soc_pct=5, tau_ms=4000, deadband_w=20):
        self.capacity_wh = capacity_wh
        self.max_charge_w = max_charge_w
        self.max_discharge_w = max_discharge_w
        self.min_soc_pct = min_soc_pct
        self.tau_ms = tau_ms
        self.deadband_w = deadband_w
        self.energy_wms = capacity_wh * soc_pct * 36000  # stored energy, W*ms
        self.power_w = 0

    @property
    def soc_pct(self):
        return self.energy_wms // (self.capacity_wh * 36000) if self.capacity_wh else 0

    def step(self, dt_ms, grid_wo_battery_w):
        """Advance by dt_ms; `grid_wo_battery_w` is what the grid would be without the battery."""
        target = -grid_wo_battery_w
        if -self.deadband_w < target - self.power_w < self.deadband_w:
            target = self.power_w
        if target > self.max_charge_w:
            target = self.max_charge_w
        elif target < -self.max_discharge_w:
            target = -self.max_discharge_w
        full_wms = self.capacity_wh * 3600000
        if target > 0 and self.energy_wms >= full_wms:
            target = 0
        elif target < 0 and self.energy_wms <= full_wms * self.min_soc_pct // 100:
            target = 0
        p = self.power_w
        if dt_ms >= self.tau_ms:
            p = target
        else:
            p += (target - p) * dt_ms // self.tau_ms
        self.power_w = p
        self.energy_wms += p * dt_ms
        return p
