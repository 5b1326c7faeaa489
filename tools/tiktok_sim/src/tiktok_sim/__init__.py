"""TikTok Shop API simulator: both returns search APIs, fault injection, lifecycle driver
and signed webhooks (`python -m tiktok_sim`, `tiktok_sim.app:create_app`)."""
