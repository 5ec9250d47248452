"""One module per trained model that chapters share: its data, its hyper-parameters, its training, its evaluation.

Each defines `VERSION`, `build()` and `train(model)`, which `mmcourse.zoo` calls to train and cache it.
"""
