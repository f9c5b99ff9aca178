"""Services: each public function orchestrates one unit of work over the adapters and the pure core."""
