from firmware import forget


def unload(*names):
    """Forget submodules that are needed only for a while (Home Assistant discovery for one
    publication; client and bridge while MQTT is off), so that their code's heap comes back at
    the next collection. Their names stay interned (qstrs are never freed)."""
    for name in names:
        forget(__name__ + "." + name)
