/* train/main.c: the command line (see the usage in the header comment) and
 * the dispatch to image, array or text training and evaluation. */

static int parse_args(int argc, char **argv, Args *a) {
    *a = (Args){.epochs = 1, .steps = -1, .limit = -1, .shuffle = 1, .name = "model", .digits = 3};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--no-shuffle")) a->shuffle = 0;
        else if (!strcmp(k, "--eval")) a->eval_only = 1;
        else if (!v) return fprintf(stderr, "error: %s needs a value (or is unknown)\n", k), -1;
        else if (!strcmp(k, "--data")) a->data = v, i++;
        else if (!strcmp(k, "--init")) a->init = v, i++;
        else if (!strcmp(k, "--resume")) a->resume = v, i++;
        else if (!strcmp(k, "--weights")) a->weights = v, i++;
        else if (!strcmp(k, "-o")) a->out = v, i++;
        else if (!strcmp(k, "--name")) a->name = v, i++;
        else if (!strcmp(k, "--png")) a->png = v, i++;
        else if (!strcmp(k, "--text")) a->text = v, i++;
        else if (!strcmp(k, "--hparam")) {
            if (a->n_hparams == (int)(sizeof a->hparams / sizeof a->hparams[0]))
                return fprintf(stderr, "error: too many --hparam options\n"), -1;
            a->hparams[a->n_hparams++] = v, i++;
        }
        else if (!strcmp(k, "--epochs")) a->epochs = strtol(v, NULL, 10), a->epochs_given = 1, i++;
        else if (!strcmp(k, "--steps")) a->steps = strtol(v, NULL, 10), i++;
        else if (!strcmp(k, "--limit")) a->limit = strtol(v, NULL, 10), i++;
        else if (!strcmp(k, "--seed")) a->seed = strtoull(v, NULL, 10), a->seed_given = 1, i++;
        else if (!strcmp(k, "--digits")) {
            char *end;
            a->digits = (int)strtol(v, &end, 10), i++;
            if (*end || end == v || a->digits < 0 || a->digits > 17)
                return fprintf(stderr, "error: --digits takes 0 to 17 (decimals of the printed loss), got '%s'\n", v), -1;
        }
        else return fprintf(stderr, "error: unknown option '%s'\n", k), -1;
    }
    if (!a->data == !a->text) return fail("one of --data DIR and --text CORPUS is required"), -1;
    if (a->eval_only ? !a->weights : (!a->init == !a->resume || !a->out))
        return fail(a->eval_only ? "--eval needs --weights W" : "training needs -o OUTDIR and one of --init or --resume"), -1;
    return 0;
}

static int run(Args *a) {
    if (a->resume && !a->eval_only && resume_seed(a)) return 1;
    if (a->text) return a->eval_only ? eval_text(a) : train_text(a);
    if (arrays_dir(a->data)) return a->eval_only ? eval_arrays(a) : train_arrays(a);
    return a->eval_only ? eval_images(a) : train_images(a);
}

int main(int argc, char **argv) {
    Args a;
    if (etch_dp_init(&argc, &argv, &dp_rank, &dp_size)) return 1;
    if (dp_rank && !freopen("/dev/null", "w", stdout)) return 1; /* rank 0 prints */
    int status = parse_args(argc, argv, &a) ? 1 : run(&a);
    etch_dp_finish(status);
    return status;
}
