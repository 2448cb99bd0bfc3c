"""Hardware emulators (microcontroller, GSM modem) on pseudo-terminals, for tests and demo."""
