"""Fine-tuning: configuration, data, augmentation, the Hugging Face Trainer and its add-ons."""
