"""Default hyperparameters. Values only: train.py turns these and the flags into one settings object.

Edit ``config_train`` to change a default, or override one attribute from the command line with
``python3 train.py --set key=value``. Schedules are in *effective epochs* (passes of gradient
evaluations over the training set): an Entropy-SGD outer step with L Langevin steps counts L batches,
so every optimizer is compared at equal compute.

Each attribute is a setting declared in training/schema.py (its kind, check, flag and meaning;
``python3 train.py -h`` lists them all): a new attribute needs its line there too, and train.py refuses
a ``config_train`` that does not match the schema. The sections below are the schema's groups.
"""


class config_train(object):
    # --- data ---
    dataset = "cifar10"            # cifar10 | cifar100 | mnist | fashion-mnist
    data_dir = "datasets"          # archives and TFRecords live under DATA_DIR/<dataset>/
    batch_size = 128               # WRN paper and Entropy-SGD paper (CIFAR)
    augment = True                 # 4-pixel reflection-padded random crops + horizontal flips (WRN recipe)
    rotate = 0.0                   # max random rotation in degrees (0: off)

    # --- model ---
    model = "wrn"                  # wrn | allcnn | lenet | mnistfc
    wrn_depth = 28                 # WRN-28-10 (Zagoruyko & Komodakis 2016)
    wrn_width = 10
    dropout = 0.0                  # WRN dropout between the block's convolutions (0.3 in the paper's variant)
    data_format = "NHWC"           # NHWC | NCHW (NCHW is faster on GPUs)

    # --- speed ---
    precision = "fp32"             # fp32 | bf16 | fp16: what the model computes in (variables stay float32);
                                   # bf16 on GPUs that have it, fp16 with dynamic loss scaling
    xla = False                    # compile the training step with XLA (the model and the optimizer
                                   # inside the Langevin loop too; the loop itself stays a TF while).
                                   # Entropy-SGD's fused Langevin arithmetic is compiled either way
    gpus = 1                       # -g: data-parallel devices (towers); batch_size is per device

    # --- optimizer (SGD / momentum / adam): WRN paper recipe ---
    optimizer = "entropy-sgd"      # entropy-sgd | parle | sgd | momentum | adam
    epochs = 200                   # effective epochs (WRN paper: 200)
    learning_rate = 0.1            # WRN paper
    lr_decay = 0.2                 # multiply the rate by this at each lr_epochs entry (WRN paper)
    lr_epochs = [60, 120, 160]     # effective epochs of the decays (WRN paper)
    momentum = 0.9                 # Nesterov momentum 0.9 (WRN paper)
    nesterov = True
    weight_decay = 5e-4            # WRN paper
    adam_learning_rate = 1e-3      # Adam (Kingma & Ba): the usual default

    # --- entropy-sgd specific (Entropy-SGD paper, CIFAR-10 settings) ---
    L = 20                         # Langevin steps per outer step
    g0 = 0.03                      # gamma_0: initial scope
    g1 = 1e-3                      # gamma_1: scoping, gamma_k = g0 * (1 + g1)^k per outer step
    langevin_lr = 0.1              # eta': Langevin step size
    epsilon = 1e-4                 # thermal noise
    mu_decay = 0.75                # weight of the old value in the running average mu
    esgd_learning_rate = 1.0       # outer learning rate (eta), divided by 5 every 4 outer epochs
    esgd_lr_decay = 0.2
    esgd_lr_epochs = [80, 160]     # 4 and 8 outer epochs at L = 20, in effective epochs
    esgd_weight_decay = 1e-3       # the authors' CIFAR-10 command
    esgd_outer_momentum = 0.9      # momentum of the outer step: 0.9 as in the authors' PyTorch code
                                   # (momentum stays that of the Langevin loop); their Lua code, which
                                   # made the paper's figures, uses none (0)

    # --- parle specific (Parle, arXiv 1707.00424: replicas of Entropy-SGD) ---
    replicas = 3                   # n replicas, each on its own data (paper: 3 to 8); L, g0, g1 and the
                                   # esgd_* recipe above apply to every replica
    rho = 0.01                     # rho_0: elastic coupling of each replica to the reference (their mean);
                                   # the authors' value, used as given (their code scales it by L * n)
    rho_scoping = 1e-3             # rho_k = rho * (1 + rho_scoping)^k, grown like gamma (the paper scopes both)

    # --- bookkeeping ---
    seed = 42
    log_every = 20                 # outer steps between progress lines and train summaries
    eval_every = 1.0               # effective epochs between evaluations on the whole test split
    bn_reestimate = True           # re-estimate batch-norm statistics at the weights evaluated (training
                                   # mode, dropout off) before each evaluation, for every optimizer, as the
                                   # Entropy-SGD authors' Lua code does: Entropy-SGD's moving averages track
                                   # its Langevin iterates, not x, and every model's are collected with
                                   # dropout on
    bn_reestimate_batches = 50     # training batches for that pass
    checkpoint_every = 1.0         # effective epochs between periodic checkpoints
    keep_checkpoints = 3           # newest checkpoints kept, the final one among them (plus "best")
