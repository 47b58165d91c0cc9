"""Stages of the tables domain, one module per MLE-Star stage."""
