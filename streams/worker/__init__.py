"""The Faust worker: the app, its agents' wiring, the views feeder and the Faust work-arounds."""
