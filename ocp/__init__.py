"""ocp: metrics, probe and experiments for plasticity loss in deep RL."""
