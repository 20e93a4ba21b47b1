"""The floor: what every layer (data, model, train, eval) may import. It imports nothing of this project."""
