using System.Diagnostics;
using System.Text.Json.Nodes;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>Hyperparameters of <see cref="Ppo"/>; defaults after CleanRL's ppo.py (github.com/vwxyzjn/cleanrl).</summary>
public sealed record PpoConfig : ITrainerConfig
{
    /// <summary>Hidden layer widths of the actor and of the critic.</summary>
    public int[] Hidden { get; init; } = [256, 256];
    /// <summary>Hidden activation: "tanh" (CleanRL) or "relu".</summary>
    public string Activation { get; init; } = "tanh";
    /// <summary>A layer norm after each hidden layer.</summary>
    public bool LayerNorm { get; init; } = false;
    /// <summary>Adam's step size at the start; annealed linearly to 0 over <see cref="AnnealIterations"/> when that is set.</summary>
    public double LearningRate { get; init; } = 2.5e-4;
    /// <summary>Iterations over which the learning rate falls to 0 (0: constant).</summary>
    public int AnnealIterations { get; init; }
    /// <summary>Adam's epsilon (CleanRL: 1e-5).</summary>
    public double AdamEpsilon { get; init; } = 1e-5;
    /// <summary>Environment steps each actor takes per iteration (CleanRL's num_steps).</summary>
    public int RolloutSteps { get; init; } = 64;
    /// <summary>Actors (environments) per worker, stepped in turn on its core (CleanRL's num_envs, per worker).</summary>
    public int ActorsPerWorker { get; init; } = 4;
    /// <summary>Discount factor.</summary>
    public double Gamma { get; init; } = 0.99;
    /// <summary>GAE's lambda.</summary>
    public double GaeLambda { get; init; } = 0.95;
    /// <summary>Minibatches per epoch.</summary>
    public int Minibatches { get; init; } = 4;
    /// <summary>Passes over each iteration's batch (CleanRL's update_epochs).</summary>
    public int Epochs { get; init; } = 4;
    /// <summary>Advantages normalised per minibatch.</summary>
    public bool NormalizeAdvantages { get; init; } = true;
    /// <summary>The surrogate's clip range epsilon.</summary>
    public double ClipCoef { get; init; } = 0.2;
    /// <summary>Clip the value loss around the old values, as PPO's reference implementation does.</summary>
    public bool ClipValueLoss { get; init; } = true;
    /// <summary>Weight of the entropy bonus (entropy over the legal actions only).</summary>
    public double EntropyCoef { get; init; } = 0.01;
    /// <summary>Weight of the value loss.</summary>
    public double ValueCoef { get; init; } = 0.5;
    /// <summary>Gradients clipped to this global L2 norm.</summary>
    public double MaxGradNorm { get; init; } = 0.5;
}

/// <summary>
/// Proximal policy optimisation (Schulman et al. 2017) with invalid-action masking (Huang and Ontañón 2020): every actor
/// samples from the softmax of its logits over the legal actions; the mask is stored with each step and re-applied when
/// the learner recomputes log-probabilities and the entropy. Advantages by GAE (Schulman et al. 2016); clipped surrogate,
/// clipped value loss, entropy bonus; all actors' steps of an iteration form one batch, split into minibatches for
/// several epochs. On-policy: actors get the learner's weights at the start of every iteration.
/// </summary>
public sealed class Ppo : ITrainer
{
    readonly PpoConfig c;
    readonly WorkerPool pool;
    readonly ActorCritic net;
    readonly ActorCritic[] actorNets;
    readonly Adam adam;
    readonly Actor[][] actors;
    readonly Rng learnerRng;

    public Ppo(PpoConfig config, WorkerPool pool, Func<int, int, IRlEnv> makeEnv, int seed)
    {
        c = config;
        this.pool = pool;
        actors = new Actor[pool.Count][];
        for (int w = 0; w < pool.Count; w++)
            actors[w] = [.. Enumerable.Range(0, c.ActorsPerWorker).Select(k => new Actor(makeEnv(w, k), Rng.For(seed, 100 + w * c.ActorsPerWorker + k)))];
        var env = actors[0][0].Env;
        var shape = new NetworkShape("ppo", env.ObservationSize, env.ActionCount, c.Hidden, c.Activation, c.LayerNorm);
        var init = Rng.For(seed, 0);
        net = new ActorCritic(shape, init.ToRandom());
        actorNets = [.. Enumerable.Range(0, pool.Count).Select(_ => new ActorCritic(shape, init.ToRandom()))];
        adam = new Adam(net.Parameters, new AdamOptions(c.LearningRate, Epsilon: c.AdamEpsilon, MaxGradNorm: c.MaxGradNorm));
        learnerRng = Rng.For(seed, 1);
    }

    public string Name => "ppo";
    public object Config => c;
    public IPolicyNetwork Policy => net;
    public long EnvSteps { get; private set; }
    public int Iterations { get; private set; }

    /// <summary>One step of one actor, as stored for the update.</summary>
    sealed record Step(float[] Observation, bool[] Mask, int Action, float LogProb, float Value, float Reward, bool Done);

    public IReadOnlyDictionary<string, double> Iterate()
    {
        var clock = Stopwatch.StartNew();
        foreach (var a in actorNets) Net.CopyWeights(net, a);
        var stats = new EpisodeStats[pool.Count];
        var rollouts = new List<(List<Step> Steps, float LastValue)>[pool.Count];
        pool.Run(w =>
        {
            stats[w] = new EpisodeStats();
            rollouts[w] = [.. actors[w].Select(_ => (new List<Step>(), 0f))];
            for (int s = 0; s < c.RolloutSteps; s++)
                for (int k = 0; k < actors[w].Length; k++) rollouts[w][k].Steps.Add(actors[w][k].Act(actorNets[w], stats[w]));
            for (int k = 0; k < actors[w].Length; k++) rollouts[w][k] = (rollouts[w][k].Steps, actors[w][k].Value(actorNets[w]));
        });
        double collectSeconds = clock.Elapsed.TotalSeconds;

        // GAE per actor, then one flat batch
        var batch = new List<(Step S, float Advantage, float Return)>();
        foreach (var (steps, lastValue) in rollouts.SelectMany(r => r))
        {
            var (adv, ret) = Gae([.. steps.Select(s => s.Reward)], [.. steps.Select(s => s.Value)], [.. steps.Select(s => s.Done)], lastValue, c.Gamma, c.GaeLambda);
            for (int t = 0; t < steps.Count; t++) batch.Add((steps[t], adv[t], ret[t]));
        }
        EnvSteps += batch.Count;

        if (c.AnnealIterations > 0)
            adam.Options = adam.Options with { LearningRate = c.LearningRate * Math.Max(0, 1 - Iterations / (double)c.AnnealIterations) };
        var values = new Dictionary<string, double>();
        var all = new EpisodeStats();
        foreach (var s in stats) s.CopyTo(all);
        all.AddTo(values);
        var (pg, vl, ent, kl, clipped, norm) = Learn(batch);
        (values["policy_loss"], values["value_loss"], values["entropy"], values["approx_kl"], values["clip_fraction"], values["grad_norm"]) = (pg, vl, ent, kl, clipped, norm);
        values["loss"] = pg + c.ValueCoef * vl - c.EntropyCoef * ent;
        values["learning_rate"] = adam.Options.LearningRate;
        values["env_steps_per_s"] = batch.Count / Math.Max(collectSeconds, 1e-9);
        values["iteration_seconds"] = clock.Elapsed.TotalSeconds;
        Iterations++;
        return values;
    }

    /// <summary>Generalized advantage estimation (Schulman et al. 2016) over one actor's rollout, in float as the batch
    /// stores it: delta_t = r_t + gamma V_{t+1} (1 - done_t) - V_t and A_t = delta_t + gamma lambda (1 - done_t) A_{t+1},
    /// with <paramref name="lastValue"/> as the value after the last step; the returns (the critic's targets) are A_t + V_t.</summary>
    internal static (float[] Advantages, float[] Returns) Gae(ReadOnlySpan<float> rewards, ReadOnlySpan<float> values, ReadOnlySpan<bool> dones,
        float lastValue, double gamma, double lambda)
    {
        var adv = new float[rewards.Length];
        float next = lastValue, gae = 0;
        for (int t = rewards.Length - 1; t >= 0; t--)
        {
            float notDone = dones[t] ? 0 : 1;
            float delta = rewards[t] + (float)gamma * next * notDone - values[t];
            adv[t] = gae = delta + (float)(gamma * lambda) * notDone * gae;
            next = values[t];
        }
        var ret = new float[rewards.Length];
        for (int t = 0; t < ret.Length; t++) ret[t] = adv[t] + values[t];
        return (adv, ret);
    }

    /// <summary>PPO's clipped surrogate on a minibatch: the mean over its rows of max(-A r, -A clip(r, 1 - eps, 1 + eps)),
    /// r = exp(logp[b, action_b] - oldLogp_b). Writes dLoss/dlogp into <paramref name="dlogp"/> (the taken actions'
    /// entries only) and returns the loss, the mean approximate KL (r - 1 - log r) and the fraction of ratios outside
    /// [1 - eps, 1 + eps].</summary>
    internal static (double Loss, double Kl, double ClipFraction) ClippedSurrogate(Matrix logp, ReadOnlySpan<int> actions, ReadOnlySpan<float> oldLogp,
        ReadOnlySpan<float> advantages, double clipCoef, Matrix dlogp)
    {
        int size = actions.Length;
        double pg = 0, kl = 0, clipped = 0;
        for (int b = 0; b < size; b++)
        {
            float newLogp = logp[b, actions[b]], logRatio = newLogp - oldLogp[b], ratio = MathF.Exp(logRatio);
            float lo = 1 - (float)clipCoef, hi = 1 + (float)clipCoef;
            float u1 = -advantages[b] * ratio, u2 = -advantages[b] * Math.Clamp(ratio, lo, hi);
            pg += Math.Max(u1, u2);
            kl += ratio - 1 - logRatio;
            bool outside = ratio < lo || ratio > hi;
            if (outside) clipped++;
            float dRatio = u1 >= u2 ? -advantages[b] : outside ? 0 : -advantages[b];
            dlogp[b, actions[b]] = dRatio * ratio / size;
        }
        return (pg / size, kl / size, clipped / size);
    }

    /// <summary>PPO's value loss on a minibatch, <paramref name="valueCoef"/> not included: the mean over its rows of
    /// 0.5 (v - R)^2, or with <paramref name="clip"/> of 0.5 max((v - R)^2, (V_old + clip(v - V_old, -eps, eps) - R)^2).
    /// Writes dLoss/dv of <paramref name="valueCoef"/> times that loss into <paramref name="dv"/> and returns the loss.</summary>
    internal static double ValueLoss(Matrix v, ReadOnlySpan<float> oldValues, ReadOnlySpan<float> returns, double clipCoef, bool clip, double valueCoef, Matrix dv)
    {
        int size = returns.Length;
        double vl = 0;
        for (int b = 0; b < size; b++)
        {
            float diff = v[b, 0] - returns[b];
            if (clip)
            {
                float delta = Math.Clamp(v[b, 0] - oldValues[b], -(float)clipCoef, (float)clipCoef), diffClipped = oldValues[b] + delta - returns[b];
                bool useClipped = diffClipped * diffClipped > diff * diff;
                vl += 0.5 * Math.Max(diff * diff, diffClipped * diffClipped);
                bool inside = Math.Abs(v[b, 0] - oldValues[b]) < clipCoef;
                dv[b, 0] = (float)valueCoef * (useClipped ? (inside ? diffClipped : 0) : diff) / size;
            }
            else
            {
                vl += 0.5 * diff * diff;
                dv[b, 0] = (float)valueCoef * diff / size;
            }
        }
        return vl / size;
    }

    /// <summary>The epochs of minibatch updates; returns the last epoch's means.</summary>
    (double Pg, double Vl, double Entropy, double Kl, double ClipFraction, double GradNorm) Learn(List<(Step S, float Advantage, float Return)> batch)
    {
        int n = batch.Count, minibatches = Math.Clamp(c.Minibatches, 1, n), actionsN = net.Shape.Actions, obs = net.Shape.Observations;
        var order = Enumerable.Range(0, n).ToArray();
        double pgSum = 0, vlSum = 0, entSum = 0, klSum = 0, clipSum = 0, normSum = 0;
        int count = 0;
        for (int epoch = 0; epoch < c.Epochs; epoch++)
        {
            for (int i = n - 1; i > 0; i--)
            {
                int j = learnerRng.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
            if (epoch == c.Epochs - 1) (pgSum, vlSum, entSum, klSum, clipSum, normSum, count) = (0, 0, 0, 0, 0, 0, 0);
            for (int m = 0; m < minibatches; m++)
            {
                // minibatch m is order[n m / M .. n (m + 1) / M): every step is used once per epoch, even when M does not divide n
                int start = n * m / minibatches, size = n * (m + 1) / minibatches - start;
                var mb = order.AsSpan(start, size).ToArray();
                var x = Batch.Stack(mb, i => batch[i].S.Observation, obs);
                var mask = new bool[size * actionsN];
                for (int b = 0; b < size; b++) batch[mb[b]].S.Mask.CopyTo(mask, b * actionsN);
                var adv = mb.Select(i => batch[i].Advantage).ToArray();
                if (c.NormalizeAdvantages && size > 1)
                {
                    float mean = adv.Average(), std = MathF.Sqrt(adv.Select(a => (a - mean) * (a - mean)).Sum() / (size - 1));
                    for (int b = 0; b < size; b++) adv[b] = (adv[b] - mean) / (std + 1e-8f);
                }
                adam.ZeroGrad();

                // policy: clipped surrogate and entropy bonus, through the masked log-softmax
                var logp = MaskedSoftmax.LogSoftmax(net.Actor.Forward(x), mask);
                var dlogp = new Matrix(size, actionsN);
                var (pg, kl, clipped) = ClippedSurrogate(logp, [.. mb.Select(i => batch[i].S.Action)], [.. mb.Select(i => batch[i].S.LogProb)], adv, c.ClipCoef, dlogp);
                var dlogits = MaskedSoftmax.LogSoftmaxBackward(logp, dlogp, mask);
                var entropy = MaskedSoftmax.Entropy(logp, mask);
                var dEntropy = Enumerable.Repeat((float)(-c.EntropyCoef / size), size).ToArray();
                var dEnt = MaskedSoftmax.EntropyBackward(logp, dEntropy, mask);
                for (int i = 0; i < dlogits.Data.Length; i++) dlogits.Data[i] += dEnt.Data[i];
                net.Actor.Backward(dlogits);

                // value: (clipped) squared error to the GAE returns
                var v = net.Critic.Forward(x);
                var dv = new Matrix(size, 1);
                double vl = ValueLoss(v, [.. mb.Select(i => batch[i].S.Value)], [.. mb.Select(i => batch[i].Return)], c.ClipCoef, c.ClipValueLoss, c.ValueCoef, dv);
                net.Critic.Backward(dv);
                normSum += adam.Step();
                pgSum += pg;
                vlSum += vl;
                entSum += entropy.Average();
                klSum += kl;
                clipSum += clipped;
                count++;
            }
        }
        count = Math.Max(1, count);
        return (pgSum / count, vlSum / count, entSum / count, klSum / count, clipSum / count, normSum / count);
    }

    public IReadOnlyList<NamedTensor> Tensors() => [.. SafeTensors.FromParameters(net.Parameters), .. adam.State()];

    public JsonObject State() => Checkpointing.Common(Iterations, EnvSteps, adam.Steps, learnerRng, actors.SelectMany(a => a).Select(a => a.Rng));

    public void InitFrom(IPolicyNetwork policy)
    {
        foreach (var n in (IPolicyNetwork[])[net, .. actorNets]) Net.CopyWeights(policy, n);
    }

    public void Restore(IReadOnlyList<NamedTensor> tensors, JsonObject state)
    {
        SafeTensors.LoadInto(net.Parameters, tensors, "checkpoint");
        adam.RestoreState(Checkpointing.AdamState(tensors), (long)state["adam_steps"]!);
        var flat = actors.SelectMany(a => a).ToArray();
        (Iterations, EnvSteps) = Checkpointing.Restore(state, learnerRng, [.. flat.Select(a => a.Rng)]);
        foreach (var a in flat) a.InFlight = false;
    }

    public void Dispose()
    {
        foreach (var a in actors.SelectMany(a => a)) (a.Env as IDisposable)?.Dispose();
    }

    /// <summary>One actor: samples from the masked softmax of its worker's copy of the actor network.</summary>
    sealed class Actor(IRlEnv env, Rng rng) : EpisodeActor(env, rng)
    {
        public Step Act(ActorCritic net, EpisodeStats stats)
        {
            var s = Current();
            var x = Net.Row(s.Observation);
            var logp = MaskedSoftmax.LogSoftmax(net.Actor.Forward(x), s.Mask);
            var p = logp.Data.Select(MathF.Exp).ToArray();
            int a = Rng.Sample(p);
            float value = net.Critic.Forward(x)[0, 0];
            var t = Advance(a, stats);
            return new Step(s.Observation, s.Mask, a, logp[0, a], value, (float)t.Reward, t.Done);
        }

        /// <summary>The critic's value of the state the actor will act from next (0 after an episode's end: the next
        /// iteration starts a new one).</summary>
        public float Value(ActorCritic net) => Now is { } s ? net.Critic.Forward(Net.Row(s.Observation))[0, 0] : 0;
    }
}
