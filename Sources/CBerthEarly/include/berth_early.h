// Intentionally empty: this target only carries a constructor.
