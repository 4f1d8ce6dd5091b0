"""SELD (sound event localisation and detection) shared by training and evaluation: DCASE frame labels of scenes
and of the spatial encoder's slots (`labels`), the DCASE 2023/2024 metrics (`metrics`) and scoring a model's encoder
on a dataset folder (`evaluate`)."""
