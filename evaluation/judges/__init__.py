"""The judges, networks that read which digits a video shows and where they go: the networks, their
training, the tracker they link digits with, order-free scoring of a reading and the tally of a model."""
