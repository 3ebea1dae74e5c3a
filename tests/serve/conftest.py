"""`metrictui serve`: the token gate over real HTTP, and the dashboard in Debian's Chromium
against the real engine on the local stack. Helpers: helpers/browser.py (Chromium, and the
text a tab's terminal shows) and helpers/serve_proc.py (serve and the engine as processes).
"""
