using System.Diagnostics;
using System.Text;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune.CostModel;

/// <summary>A measured schedule a cost model learns from: the nest and its GFLOPS on the model's machine.</summary>
public sealed record CostSample(Nest Nest, double Gflops);

/// <summary>
/// A learned cost model of one machine: <see cref="ScheduleFeatures"/> of a schedule to its predicted log2 GFLOPS, a
/// <see cref="BoostedTrees"/> ensemble fitted to the measurement store's records of this machine key and runtime. What a
/// search asks it is a ranking of candidates (<see cref="Predict(IReadOnlyList{Nest})"/>), so the target is log2 GFLOPS:
/// differences are ratios, and problems of every size weigh alike.
/// <list type="table">
/// <item><term>file</term><description><c>cost-models/SLUG.ltcm</c> in the data folder (<see cref="DefaultPath"/>), one per kind
/// of machine and vector width, written by <see cref="Save"/> through <see cref="AtomicFile"/>: a magic, the machine key
/// and runtime it learned on, the features' version, the lanes, the rows and store size it was fitted on, then the
/// trees.</description></item>
/// <item><term>refusals</term><description>(<see cref="CostModelError"/>, exit 2) a store with fewer than <see cref="MinRows"/>
/// measurements of this machine, or of fewer than <see cref="MinComputations"/> computations; a file that is no cost model
/// or is damaged; a model of another machine key or runtime, or of other features.</description></item>
/// <item><term>retraining</term><description>a model is stale once the store holds <see cref="RetrainGrowth"/> more rows of its
/// machine than it was fitted on, and at least <see cref="MinRows"/> more (<see cref="IsStale"/>): <c>cost-model train</c> then
/// fits it again, and <c>search</c> and <c>compare-searches</c> do before a <c>cost_model</c> search.</description></item>
/// </list>
/// </summary>
public sealed class ScheduleCostModel
{
    /// <summary>Fewest measurements of a machine a model is fitted on.</summary>
    public const int MinRows = 200;

    /// <summary>Fewest computations those measurements must cover.</summary>
    public const int MinComputations = 3;

    /// <summary>The store's growth (a share of the rows a model was fitted on) that makes a model stale.</summary>
    public const double RetrainGrowth = 0.10;

    /// <summary>Most rows a model is fitted on: a larger store is sampled (seeded), which keeps a fit under a minute on one
    /// core.</summary>
    public const int MaxTrainRows = 100_000;

    const string Magic = "LTCM", FileName = ".ltcm";
    const int FormatVersion = 1;

    ScheduleCostModel(string machine, string runtime, string features, int lanes, int rows, int storeRows, int computations,
        DateTime trainedAt, double seconds, BoostedTrees trees) =>
        (Machine, Runtime, Features, Lanes, Rows, StoreRows, Computations, TrainedAt, TrainSeconds, Trees) =
        (machine, runtime, features, lanes, rows, storeRows, computations, trainedAt, seconds, trees);

    /// <summary>The machine key it learned on (<see cref="PeakCache.MachineKey"/>).</summary>
    public string Machine { get; }

    /// <summary>The store's runtime key it learned on (<see cref="MeasurementStore.Runtime"/>: .NET, JIT version, threads).</summary>
    public string Runtime { get; }

    /// <summary>The features' version (<see cref="ScheduleFeatures.Version"/>).</summary>
    public string Features { get; }

    /// <summary>Floats per vector on its machine.</summary>
    public int Lanes { get; }

    /// <summary>Rows it was fitted on.</summary>
    public int Rows { get; }

    /// <summary>Rows of its machine the store held when it was fitted (staleness is measured from here).</summary>
    public int StoreRows { get; }

    /// <summary>Distinct computations among its rows.</summary>
    public int Computations { get; }

    /// <summary>When it was fitted (UTC).</summary>
    public DateTime TrainedAt { get; }

    /// <summary>Seconds the fit took.</summary>
    public double TrainSeconds { get; }

    /// <summary>The ensemble.</summary>
    public BoostedTrees Trees { get; }

    /// <summary>The predicted log2 GFLOPS of <paramref name="nest"/>.</summary>
    public double Predict(Nest nest) => Trees.Predict(ScheduleFeatures.Of(nest, Lanes));

    /// <summary>The predicted log2 GFLOPS of each nest.</summary>
    public double[] Predict(IReadOnlyList<Nest> nests) => ScheduleFeatures.Each(nests, Lanes, x => Trees.Predict(x));

    /// <summary>True when the store has grown past <see cref="RetrainGrowth"/> (and <see cref="MinRows"/> rows) since the fit.</summary>
    public bool IsStale(int storeRows) => storeRows - StoreRows >= Math.Max(MinRows, RetrainGrowth * StoreRows);

    /// <summary>The feature rows of <paramref name="nests"/>, row-major.</summary>
    public static float[] FeatureRows(IReadOnlyList<Nest> nests, int lanes)
    {
        ArgumentNullException.ThrowIfNull(nests);
        var x = new float[nests.Count * ScheduleFeatures.Count];
        for (int i = 0; i < nests.Count; i++) ScheduleFeatures.Write(nests[i], lanes, x.AsSpan(i * ScheduleFeatures.Count, ScheduleFeatures.Count));
        return x;
    }

    /// <summary>The training target of a measurement: log2 GFLOPS.</summary>
    public static float Target(double gflops) => (float)Math.Log2(gflops);

    /// <summary>Fits a model of <paramref name="machine"/> and <paramref name="runtime"/> to <paramref name="samples"/> (at most
    /// <see cref="MaxTrainRows"/> of them, a seeded sample of a larger set); a <see cref="CostModelError"/> when they are
    /// too few (<see cref="Require"/>).</summary>
    public static ScheduleCostModel Train(IReadOnlyList<CostSample> samples, string machine, string runtime, int lanes, int storeRows,
        BoostingOptions? options = null, string source = "the samples")
    {
        Require(samples, source, machine);
        var clock = Stopwatch.StartNew();
        var rows = samples.Count <= MaxTrainRows ? samples : Shuffled(samples, options?.Seed ?? 0).Take(MaxTrainRows).ToList();
        var trees = BoostedTrees.Fit(FeatureRows([.. rows.Select(s => s.Nest)], lanes), ScheduleFeatures.Count, [.. rows.Select(s => Target(s.Gflops))], CostModelEvaluation.OptionsFor(rows.Count, options));
        return new ScheduleCostModel(machine, runtime, ScheduleFeatures.Version, lanes, rows.Count, storeRows,
            rows.Select(s => s.Nest.Computation.Text).Distinct().Count(), DateTime.UtcNow, clock.Elapsed.TotalSeconds, trees);
    }

    /// <summary>A <see cref="CostModelError"/> unless <paramref name="samples"/> are enough to fit a model: at least
    /// <see cref="MinRows"/> measurements of at least <see cref="MinComputations"/> computations.</summary>
    public static void Require(IReadOnlyList<CostSample> samples, string source, string machine)
    {
        ArgumentNullException.ThrowIfNull(samples);
        int computations = samples.Select(s => s.Nest.Computation.Text).Distinct().Count();
        if (samples.Count < MinRows || computations < MinComputations)
            throw new CostModelError($"{source} holds {samples.Count} measurement(s) of {computations} computation(s) on {machine}; a cost model needs at least "
                + $"{MinRows} measurements of at least {MinComputations} computations: run searches first (e.g. looptune search --spec \"mm 128 128 128\" --method random --budget 30s)");
    }

    /// <summary><paramref name="samples"/> in a seeded random order.</summary>
    public static List<CostSample> Shuffled(IReadOnlyList<CostSample> samples, int seed)
    {
        var list = samples.ToList();
        var rng = new Random(seed);
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return list;
    }

    /// <summary>The measurements of <paramref name="store"/>'s machine and runtime as samples (a record whose computation or
    /// schedule no longer parses, or with no positive GFLOPS, is left out and counted in <c>Skipped</c>).</summary>
    public static (List<CostSample> Samples, int Skipped) Read(MeasurementStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var computations = new Dictionary<string, Computation?>();
        var samples = new List<CostSample>();
        int skipped = 0;
        foreach (var m in store.Measurements())
        {
            if (!computations.TryGetValue(m.Computation, out var c))
            {
                try { c = Computation.Parse(m.Computation); }
                catch (LoopTuneException) { c = null; }
                computations[m.Computation] = c;
            }
            Nest? nest = null;
            if (c is not null && m.Gflops > 0 && double.IsFinite(m.Gflops))
                try { nest = Nest.Parse(c, ">" + m.Schedule); } // a schedule key has no cursor; the first loop gets it
                catch (LoopTuneException) { }
            if (nest is null) skipped++;
            else samples.Add(new CostSample(nest, m.Gflops));
        }
        return (samples, skipped);
    }

    /// <summary>Where this kind of machine's model is kept: <c>cost-models/SLUG.ltcm</c> in the data folder
    /// (<see cref="Measure.Machine.Slug"/>, at the JIT's vector width), <c>SLUG-Nthreads.ltcm</c> for kernels on N threads
    /// (<see cref="Jit.RunThreads"/>: the store keeps their measurements apart, and so are their models).</summary>
    public static string DefaultPath => Path.Combine(DataFolder.Root, "cost-models",
        Measure.Machine.Slug + (Jit.RunThreads.Default > 1 ? $"-{Jit.RunThreads.Default}threads" : "") + FileName);

    /// <summary>Writes the model to <paramref name="path"/> (a temporary name, then renamed; its folder made when missing).</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        try { Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(path, e); }
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(Encoding.ASCII.GetBytes(Magic));
            w.Write(FormatVersion);
            w.Write(Machine);
            w.Write(Runtime);
            w.Write(Features);
            w.Write(Lanes);
            w.Write(Rows);
            w.Write(StoreRows);
            w.Write(Computations);
            w.Write(TrainedAt.ToBinary());
            w.Write(TrainSeconds);
            Trees.Write(w);
        });
    }

    /// <summary>Reads the model at <paramref name="path"/> and checks it is one of <paramref name="machine"/> and
    /// <paramref name="runtime"/> with today's features: a <see cref="CostModelError"/> naming the file otherwise (missing, not
    /// a cost model, damaged, another machine's).</summary>
    public static ScheduleCostModel Load(string path, string machine, string runtime)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var model = Read(path);
        if (model.Machine != machine || model.Runtime != runtime)
            throw new CostModelError($"the cost model {path} learned on {model.Machine} ({model.Runtime}), not on this machine, {machine} ({runtime}): "
                + "a cost model ranks schedules only on the machine it measured; train one here with looptune cost-model train");
        if (model.Features != ScheduleFeatures.Version)
            throw new CostModelError($"the cost model {path} reads the features {model.Features}; this LoopTune computes {ScheduleFeatures.Version}: train it again with looptune cost-model train");
        return model;
    }

    static ScheduleCostModel Read(string path)
    {
        try
        {
            using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
            if (Encoding.ASCII.GetString(r.ReadBytes(Magic.Length)) != Magic) throw new InvalidDataException("it does not start with LTCM");
            if (r.ReadInt32() is var version && version != FormatVersion) throw new InvalidDataException($"its format {version} is not this LoopTune's ({FormatVersion})");
            var (machine, runtime, features) = (r.ReadString(), r.ReadString(), r.ReadString());
            var (lanes, rows, storeRows, computations) = (r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
            var (at, seconds) = (DateTime.FromBinary(r.ReadInt64()), r.ReadDouble());
            var trees = BoostedTrees.Read(r);
            if (lanes < 1 || trees.Features != ScheduleFeatures.Count && features == ScheduleFeatures.Version) throw new InvalidDataException("its header does not match its trees");
            if (r.BaseStream.Position != r.BaseStream.Length) throw new InvalidDataException("it has bytes after its trees");
            return new ScheduleCostModel(machine, runtime, features, lanes, rows, storeRows, computations, at, seconds, trees);
        }
        catch (FileNotFoundException) { throw new CostModelError($"there is no cost model at {path}: train one with looptune cost-model train"); }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or DecoderFallbackException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new CostModelError($"{path} is not a LoopTune cost model or is damaged ({e.Message.TrimEnd('.')})", e);
        }
    }

    /// <summary>The model at <paramref name="path"/> (default: <see cref="DefaultPath"/>), fitted again from
    /// <paramref name="store"/> and saved when there is none, when it is stale (<see cref="IsStale"/>) or when
    /// <paramref name="force"/> says so; <c>Trained</c> says whether it was. A file at the default path that is not this
    /// machine's model is replaced (it is a cache, as the store is); one given by path is refused (<see cref="Load"/>).</summary>
    public static (ScheduleCostModel Model, bool Trained) Refresh(MeasurementStore store, string? path = null, bool force = false)
    {
        ArgumentNullException.ThrowIfNull(store);
        string file = path ?? DefaultPath;
        int rows = store.CountOfThisMachine;
        ScheduleCostModel? existing = null;
        if (File.Exists(file))
            try { existing = Load(file, store.Machine, store.Runtime); }
            catch (CostModelError) when (path is null) { }
        if (existing is not null && !force && !existing.IsStale(rows)) return (existing, false);
        var (samples, _) = Read(store);
        var model = Train(samples, store.Machine, store.Runtime, LanesNow, rows, source: $"the measurement store {store.Path}");
        model.Save(file);
        return (model, true);
    }

    /// <summary>Floats per vector of the kernels this process compiles (<see cref="Jit.JitOptions.Default"/>, which
    /// <c>--vector-bits</c> limits).</summary>
    public static int LanesNow => Math.Max(1, Jit.JitOptions.Default.VectorBits / 32);

    /// <summary>The machine key, runtime and lanes the schedules <paramref name="evaluator"/> times are measured under: its
    /// store's keys and its kernels' width for a <see cref="Env.KernelEvaluator"/>, else this process's.</summary>
    public static (string Machine, string Runtime, int Lanes) KeysOf(Env.IEvaluator evaluator) => evaluator switch
    {
        Env.KernelEvaluator { Store: { } store } k => (store.Machine, store.Runtime, Math.Max(1, k.Jit.VectorBits / 32)),
        Env.KernelEvaluator k => (Measure.Machine.KeyAt(k.Jit.VectorBits), MeasurementStore.RuntimeAt(k.Threads), Math.Max(1, k.Jit.VectorBits / 32)),
        _ => (Measure.Machine.Key, MeasurementStore.CurrentRuntime, LanesNow),
    };

    /// <summary>This kind of machine's model at <see cref="DefaultPath"/> when there is one of <paramref name="machine"/> and
    /// <paramref name="runtime"/>; null when there is none, and null with a warning when the file there is damaged or
    /// another machine's (a search then learns from its own measurements alone).</summary>
    public static ScheduleCostModel? TryLoadDefault(string machine, string runtime)
    {
        if (!File.Exists(DefaultPath)) return null;
        try { return Load(DefaultPath, machine, runtime); }
        catch (CostModelError e)
        {
            Warnings.Write($"{e.Message}; searching without it");
            return null;
        }
    }
}

/// <summary>A cost model that cannot be trained or used: too few measurements (the message says how many are needed), a
/// file that is no cost model, a model of another machine, runtime or feature version.</summary>
public sealed class CostModelError(string message, Exception? inner = null) : LoopTuneException(message, inner);
