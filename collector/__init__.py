"""farmwatch collector: subscribes to every farm's readings and writes them to InfluxDB."""
