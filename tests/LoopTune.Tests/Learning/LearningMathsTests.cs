using LoopTune.Learning;
using LoopTune.Learning.Nn;
using Xunit.Abstractions;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>
/// The learners' maths against oracles written in the test (issue 18, item 7): n-step returns and GAE against numbers
/// worked out by hand, the PPO losses' and the dueling head's gradients against central differences of losses written
/// again here in double, the prioritized replay's priorities, probabilities and importance weights against hand values.
/// Gradient errors are max |analytic - numeric| / max(1e-2, |analytic| + |numeric|) as in <see cref="GradientTests"/>.
/// </summary>
public sealed class LearningMathsTests(ITestOutputHelper output)
{
    void Check(string what, double bound, params double[] errors) => CheckErrors(output, what, bound, errors);

    /// <summary>
    /// An episode of fixed rewards: the observation is the one-hot of the step (0 .. rewards.Length, the last one the
    /// terminal state), reward rewards[k] on leaving step k whatever the action, and action k mod Actions illegal at step k.
    /// </summary>
    sealed class ScriptedEnv(float[] rewards, int actions = 3) : IRlEnv
    {
        int position;

        public int ObservationSize => rewards.Length + 1;
        public int ActionCount => actions;

        public TimeStep Reset(Rng rng)
        {
            position = 0;
            return Observe(0);
        }

        public TimeStep Step(int action)
        {
            Assert.True(Mask(position)[action], $"illegal action {action} at step {position}");
            return Observe(rewards[position++]);
        }

        public bool[] Mask(int p) => [.. Enumerable.Range(0, actions).Select(a => a != p % actions)];

        TimeStep Observe(double reward)
        {
            var x = new float[rewards.Length + 1];
            x[position] = 1;
            return new TimeStep(x, Mask(position), reward, position == rewards.Length, 0);
        }
    }

    static NetworkShape DqnShape(int observations, int actions, int[] hidden, bool layerNorm = false) => new("dqn", observations, actions, hidden, "tanh", layerNorm);

    // ---- 1. n-step returns ----

    /// <summary>Rewards 1, 2, 4, 8, 16 (episode of 5 steps), gamma 0.9, n = 3, by hand: (return, discount, next step).
    /// Steps 0 and 1 bootstrap from the state 3 steps later with 0.9^3; step 2's window ends exactly on the terminal
    /// state; steps 3 and 4 have the terminal inside their window, so their returns stop at it and nothing bootstraps.</summary>
    static readonly (double Return, double Discount, int Next)[] FiveSteps =
    [
        (1 + 0.9 * 2 + 0.81 * 4, 0.729, 3),    // 6.04
        (2 + 0.9 * 4 + 0.81 * 8, 0.729, 4),    // 12.08
        (4 + 0.9 * 8 + 0.81 * 16, 0, 5),       // 24.16, ends at the terminal
        (8 + 0.9 * 16, 0, 5),                  // 22.4, window cut by the terminal
        (16, 0, 5),
    ];

    static void CheckNStep((double Return, double Discount, int Next)[] expected, ExperienceBatch batch, int[] steps)
    {
        Assert.Equal(steps.Length, batch.Count);
        for (int i = 0; i < batch.Count; i++)
        {
            var t = batch[i];
            int k = Array.IndexOf(t.Observation, 1f);
            Assert.Equal(steps[i], k);
            var (ret, discount, next) = expected[k];
            Assert.Equal(ret, t.Return, 1e-5 * Math.Abs(ret));
            Assert.Equal(discount, t.Discount, 1e-6);
            Assert.Equal(next, Array.IndexOf(t.NextObservation, 1f));
        }
    }

    [Fact]
    public void N_step_returns_stop_at_a_terminal_inside_the_window_and_do_not_bootstrap_past_it()
    {
        var c = new ApexDqnConfig { EpsilonBase = 0, NStep = 3, Gamma = 0.9, RolloutFragment = 7 };
        var env = new ScriptedEnv([1, 2, 4, 8, 16]);
        using var group = new DqnActorGroup(c, DqnShape(env.ObservationSize, 3, [4]), [env], first: 0, total: 1, seed: 1);
        // round 1: the whole first episode (5 transitions), then steps 0 and 1 of the second wait in the window
        CheckNStep(FiveSteps, group.Collect(), [0, 1, 2, 3, 4]);
        // round 2: the window carried over completes the second episode; the third's first four steps emit its steps 0 and 1
        CheckNStep(FiveSteps, group.Collect(), [0, 1, 2, 3, 4, 0, 1]);

        // an episode shorter than n: the window never fills, every return stops at the terminal
        var shortC = c with { RolloutFragment = 2 };
        var shortEnv = new ScriptedEnv([1, 2]);
        using var shortGroup = new DqnActorGroup(shortC, DqnShape(shortEnv.ObservationSize, 3, [4]), [shortEnv], first: 0, total: 1, seed: 1);
        CheckNStep([(1 + 0.9 * 2, 0, 2), (2, 0, 2)], shortGroup.Collect(), [0, 1]);

        // n = 1: one-step targets with gamma
        var oneC = c with { NStep = 1, RolloutFragment = 5 };
        using var oneGroup = new DqnActorGroup(oneC, DqnShape(env.ObservationSize, 3, [4]), [new ScriptedEnv([1, 2, 4, 8, 16])], first: 0, total: 1, seed: 1);
        CheckNStep([(1, 0.9, 1), (2, 0.9, 2), (4, 0.9, 3), (8, 0.9, 4), (16, 0, 5)], oneGroup.Collect(), [0, 1, 2, 3, 4]);
    }

    [Fact]
    public void Actors_initial_priorities_are_the_n_step_td_errors_over_legal_next_actions_plus_epsilon()
    {
        var c = new ApexDqnConfig { EpsilonBase = 0, NStep = 2, Gamma = 0.9, RolloutFragment = 6, PriorityEpsilon = 0.01 };
        var env = new ScriptedEnv([1, -2, 0.5f, 3, 1, -1]);
        var shape = DqnShape(env.ObservationSize, 3, [5]);
        var learner = new QNetwork(shape, new Random(4));
        var rng = new Random(5);
        foreach (var p in learner.Parameters) Fill(rng, p.Value, 0.8f);
        using var group = new DqnActorGroup(c, shape, [env], first: 0, total: 1, seed: 1);
        group.SetWeights(Net.Flatten(learner));
        var batch = group.Collect();

        Assert.Equal(6, batch.Count);
        int maskMatters = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var t = batch[i];
            var q = learner.Forward(Net.Row(t.Observation)).Row(0).ToArray();
            var next = learner.Forward(Net.Row(t.NextObservation)).Row(0).ToArray();
            double legalMax = Enumerable.Range(0, 3).Where(a => t.NextMask[a]).Max(a => (double)next[a]);
            if (t.Discount > 0 && legalMax != next.Max()) maskMatters++;
            double expected = Math.Abs(t.Return + t.Discount * legalMax - q[t.Action]) + 0.01;
            Assert.Equal(expected, batch.Priorities[i], 1e-5 * expected);
        }
        Assert.True(maskMatters > 0, "no bootstrapped transition whose next state's best action is illegal: the mask is untested");
    }

    // ---- 2. GAE ----

    [Fact]
    public void Gae_advantages_and_returns_equal_a_hand_computation_with_a_terminal_in_the_middle()
    {
        // gamma 0.9, lambda 0.8 (gamma lambda = 0.72), the episode ends at step 1, value after the last step 1.5:
        //   t4: delta = 1 + 0.9 * 1.5 - 0.25 = 2.1                A = 2.1
        //   t3: delta = -1 + 0.9 * 0.25 - 2 = -2.775              A = -2.775 + 0.72 * 2.1 = -1.263
        //   t2: delta = 2 + 0.9 * 2 + 0.5 = 4.3                   A = 4.3 + 0.72 * -1.263 = 3.39064
        //   t1: terminal, delta = 0 - 1 = -1                      A = -1 (nothing from t2 flows back)
        //   t0: delta = 1 + 0.9 * 1 - 0.5 = 1.4                   A = 1.4 + 0.72 * -1 = 0.68
        float[] rewards = [1, 0, 2, -1, 1], values = [0.5f, 1, -0.5f, 2, 0.25f];
        bool[] dones = [false, true, false, false, false];
        var (adv, ret) = Ppo.Gae(rewards, values, dones, lastValue: 1.5f, gamma: 0.9, lambda: 0.8);
        AssertClose([0.68, -1, 3.39064, -1.263, 2.1], adv);
        AssertClose([1.18, 0, 2.89064, 0.737, 2.35], ret);   // A + V

        // the rollout ends on a terminal: the value after it is ignored (t4: A = 1 - 0.25 = 0.75, t3: -2.775 + 0.72 * 0.75)
        var (adv2, ret2) = Ppo.Gae(rewards, values, [false, true, false, false, true], lastValue: 100f, gamma: 0.9, lambda: 0.8);
        AssertClose([0.68, -1, 4.3 + 0.72 * -2.235, -2.235, 0.75], adv2);
        AssertClose([1.18, 0, 3.8 + 0.72 * -2.235, -0.235, 1], ret2);

        static void AssertClose(double[] expected, float[] actual)
        {
            Assert.Equal(expected.Length, actual.Length);
            for (int t = 0; t < expected.Length; t++) Assert.Equal(expected[t], actual[t], 1e-5);
        }
    }

    // ---- 3. PPO's losses ----

    static ActorCritic SmallActorCritic(int seed)
    {
        var rng = new Random(seed);
        var net = new ActorCritic(new NetworkShape("ppo", 3, 4, [6], "tanh", false), rng);
        // weights of order 1 everywhere (the actor's head is initialised at 0.01), so that no gradient is tiny
        foreach (var p in net.Parameters) Fill(rng, p.Value, 0.7f);
        return net;
    }

    [Fact]
    public void Ppo_clipped_surrogate_gradient_matches_central_differences_clipped_and_unclipped()
    {
        var net = SmallActorCritic(11);
        var rng = new Random(12);
        const int B = 6, A = 4;
        const double clip = 0.2;
        var x = RandomMatrix(rng, B, 3);
        int[] actions = [0, 1, 2, 3, 1, 2];
        var mask = new bool[B * A];
        for (int b = 0; b < B; b++)
            for (int a = 0; a < A; a++) mask[b * A + a] = a == actions[b] || (a + b) % 3 != 0;   // some illegal actions, never the taken one
        // ratio and advantage per row: A > 0, r > 1.2 (clipped: flat); A > 0, r < 0.8 (the min keeps r: slope -A);
        // A < 0, r > 1.2 (keeps r); A < 0, r < 0.8 (clipped: flat); then two inside the clip range
        double[] ratios = [1.5, 0.6, 1.5, 0.6, 1.1, 0.9];
        float[] adv = [1.0f, 0.8f, -1.2f, -0.7f, 0.5f, -1.5f];
        var logp0 = MaskedSoftmax.LogSoftmax(net.Actor.Forward(x), mask);
        var oldLogp = Enumerable.Range(0, B).Select(b => (float)(logp0[b, actions[b]] - Math.Log(ratios[b]))).ToArray();

        // the oracle: mean_b max(-A r, -A clip(r)), r = exp(logp - old), logp by its own masked log-sum-exp in double
        double Oracle(Matrix logits)
        {
            double sum = 0;
            for (int b = 0; b < B; b++)
            {
                double max = Enumerable.Range(0, A).Where(a => mask[b * A + a]).Max(a => (double)logits[b, a]);
                double lse = max + Math.Log(Enumerable.Range(0, A).Where(a => mask[b * A + a]).Sum(a => Math.Exp(logits[b, a] - max)));
                double r = Math.Exp(logits[b, actions[b]] - lse - oldLogp[b]);
                sum += Math.Max(-adv[b] * r, -adv[b] * Math.Clamp(r, 1 - clip, 1 + clip));
            }
            return sum / B;
        }

        // the learner's path: log-softmax, surrogate, log-softmax backward, actor backward
        foreach (var p in net.Actor.Parameters) Array.Clear(p.Grad);
        var logits = net.Actor.Forward(x);
        var logp = MaskedSoftmax.LogSoftmax(logits, mask);
        var dlogp = new Matrix(B, A);
        var (loss, kl, clipFraction) = Ppo.ClippedSurrogate(logp, actions, oldLogp, adv, clip, dlogp);
        var dlogits = MaskedSoftmax.LogSoftmaxBackward(logp, dlogp, mask);
        net.Actor.Backward(dlogits);
        var analytic = net.Actor.Parameters.Select(p => (float[])p.Grad.Clone()).ToList();

        Assert.Equal(Oracle(logits), loss, 1e-5);
        Assert.Equal(4.0 / 6, clipFraction, 12);
        Assert.Equal(ratios.Average(r => r - 1 - Math.Log(r)), kl, 1e-5);
        // the regimes: rows 0 and 3 are clipped (no gradient at all), the others are not
        for (int b = 0; b < B; b++)
        {
            double rowNorm = Enumerable.Range(0, A).Sum(a => Math.Abs(dlogits[b, a]));
            if (b is 0 or 3) Assert.Equal(0, rowNorm);
            else Assert.True(rowNorm > 1e-2, $"row {b} should have a gradient, has {rowNorm}");
        }

        var errors = new List<double> { GradientError(logits.Data, dlogits.Data, () => Oracle(logits), 1e-3f) };
        for (int k = 0; k < analytic.Count; k++)
            errors.Add(GradientError(net.Actor.Parameters[k].Value, analytic[k], () => Oracle(net.Actor.Forward(x)), 1e-3f));
        Check("ppo surrogate (logits, then the actor's parameters)", 1e-2, [.. errors]);
    }

    [Theory, InlineData(true), InlineData(false)]
    public void Ppo_value_loss_gradient_matches_central_differences_clipped_and_unclipped(bool clipValueLoss)
    {
        var net = SmallActorCritic(21);
        var rng = new Random(22);
        const int B = 6;
        const double clip = 0.2, valueCoef = 0.5;
        var x = RandomMatrix(rng, B, 3);
        var v0 = net.Critic.Forward(x);
        // old value = v0 - d, return = v0 - e. Rows 0 and 2: v has moved past the clip range towards the return, so the
        // clipped error is the larger and flat in v (no gradient); rows 1 and 3: past it away from the return, the unclipped
        // error is the larger; rows 4 and 5: inside. Every |v - old| is at least 0.1 from the clip range's edge.
        double[] d = [0.5, 0.5, -0.4, -0.4, 0.1, -0.05], e = [-0.5, 1.0, 0.6, -0.7, 0.3, -0.4];
        var oldValues = Enumerable.Range(0, B).Select(b => (float)(v0[b, 0] - d[b])).ToArray();
        var returns = Enumerable.Range(0, B).Select(b => (float)(v0[b, 0] - e[b])).ToArray();

        // the oracle: valueCoef mean_b 0.5 max((v - R)^2, (old + clip(v - old, -eps, eps) - R)^2), or without clipping 0.5 (v - R)^2
        double Oracle(Matrix v)
        {
            double sum = 0;
            for (int b = 0; b < B; b++)
            {
                double plain = Math.Pow(v[b, 0] - returns[b], 2);
                double clipped = Math.Pow(oldValues[b] + Math.Clamp(v[b, 0] - oldValues[b], -clip, clip) - returns[b], 2);
                sum += 0.5 * (clipValueLoss ? Math.Max(plain, clipped) : plain);
            }
            return valueCoef * sum / B;
        }

        foreach (var p in net.Critic.Parameters) Array.Clear(p.Grad);
        var v = net.Critic.Forward(x);
        var dv = new Matrix(B, 1);
        double loss = Ppo.ValueLoss(v, oldValues, returns, clip, clipValueLoss, valueCoef, dv);
        net.Critic.Backward(dv);
        var analytic = net.Critic.Parameters.Select(p => (float[])p.Grad.Clone()).ToList();

        Assert.Equal(Oracle(v), valueCoef * loss, 1e-5);
        for (int b = 0; b < B; b++)
        {
            if (clipValueLoss && b is 0 or 2) Assert.Equal(0f, dv[b, 0]);
            else Assert.Equal(valueCoef * e[b] / B, dv[b, 0], 1e-5);   // dLoss/dv = valueCoef (v - R) / B
        }

        var errors = new List<double> { GradientError(v.Data, dv.Data, () => Oracle(v), 1e-3f) };
        for (int k = 0; k < analytic.Count; k++)
            errors.Add(GradientError(net.Critic.Parameters[k].Value, analytic[k], () => Oracle(net.Critic.Forward(x)), 1e-3f));
        Check($"ppo value loss clip={clipValueLoss} (v, then the critic's parameters)", 1e-2, [.. errors]);
    }

    // ---- 4. the dueling head ----

    [Fact]
    public void Dueling_q_values_are_v_plus_a_minus_the_mean_of_a()
    {
        // no hidden layer: the network is one Dense layer whose column 0 is V and columns 1.. are A
        var q = new QNetwork(DqnShape(3, 4, []), new Random(31));
        var rng = new Random(32);
        Fill(rng, q.Parameters[1].Value, 0.5f);
        var (w, bias) = (q.Parameters[0].Value, q.Parameters[1].Value);
        var x = RandomMatrix(rng, 2, 3);
        var actual = q.Forward(x);
        for (int b = 0; b < 2; b++)
        {
            var va = Enumerable.Range(0, 5).Select(j => bias[j] + Enumerable.Range(0, 3).Sum(i => (double)x[b, i] * w[i * 5 + j])).ToArray();
            double meanA = va.Skip(1).Average();
            for (int a = 0; a < 4; a++) Assert.Equal(va[0] + va[1 + a] - meanA, actual[b, a], 1e-5);
        }
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Dueling_head_backward_matches_central_differences(bool huberOnTakenActions)
    {
        var rng = new Random(41);
        const int B = 5, A = 4;
        var q = new QNetwork(DqnShape(3, A, [6], layerNorm: true), rng);
        foreach (var p in q.Parameters) Fill(rng, p.Value, 0.6f);
        var x = RandomMatrix(rng, B, 3);
        var q0 = q.Forward(x);

        // the loss either sum(r * Q) over every entry, or the learner's: importance-weighted Huber (delta 1) on the taken
        // actions only, with targets that put some errors in the quadratic part and some in the linear part
        var r = RandomMatrix(rng, B, A);
        int[] actions = [0, 3, 1, 2, 3];
        float[] weights = [1f, 0.4f, 0.7f, 0.25f, 0.9f];
        double[] errorsToTarget = [0.3, -0.5, 1.8, -2.5, 0.6];
        var targets = q0.Clone();
        var mask = new bool[B * A];
        for (int b = 0; b < B; b++)
        {
            targets[b, actions[b]] = (float)(q0[b, actions[b]] - errorsToTarget[b]);
            mask[b * A + actions[b]] = true;
        }
        double Oracle(Matrix qv)
        {
            if (!huberOnTakenActions) return Dot(r, qv);
            double sum = 0;
            for (int b = 0; b < B; b++)
            {
                double dd = qv[b, actions[b]] - targets[b, actions[b]];
                sum += weights[b] * (Math.Abs(dd) <= 1 ? 0.5 * dd * dd : Math.Abs(dd) - 0.5);
            }
            return sum / B;
        }

        foreach (var p in q.Parameters) Array.Clear(p.Grad);
        var qv = q.Forward(x);
        var dq = r;
        if (huberOnTakenActions)
        {
            dq = new Matrix(B, A);
            Assert.Equal(Oracle(qv), Losses.Huber(qv, targets, dq, 1f, weights, mask), 1e-5);
        }
        q.Backward(dq);
        var analytic = q.Parameters.Select(p => (float[])p.Grad.Clone()).ToList();
        var errors = new List<double>();
        for (int k = 0; k < analytic.Count; k++)
            errors.Add(GradientError(q.Parameters[k].Value, analytic[k], () => Oracle(q.Forward(x)), 1e-3f));
        Check($"dueling head huber={huberOnTakenActions} (every parameter)", 1e-2, [.. errors]);
    }

    // ---- 5. prioritized replay ----

    [Fact]
    public void Replay_priorities_probabilities_and_importance_weights_equal_hand_values_after_an_update()
    {
        // alpha 0.5; five transitions at priority 1, then the four "sampled" ones get |td| + eps with eps 0.25:
        // |3.75| + 0.25 = 4, |-0.75| + 0.25 = 1, 8.75 + 0.25 = 9, 0 + 0.25 = 0.25 -> stored p^0.5 = 2, 1, 3, 0.5 (and 1)
        var replay = new PrioritizedReplay(6, alpha: 0.5);
        for (int i = 0; i < 5; i++) replay.Add(new Transition([i], 0, 0, [i], [true], 0), 1.0);
        double[] td = [3.75, -0.75, 8.75, 0];
        for (int i = 0; i < 4; i++) replay.Update(i, Math.Abs(td[i]) + 0.25);

        double[] stored = [2, 1, 3, 0.5, 1];   // total 7.5
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(stored[i], replay.StoredPriority(i), 12);
            Assert.Equal(stored[i] / 7.5, replay.Probability(i), 12);
        }
        Assert.Equal(0, replay.StoredPriority(5));
        Assert.Equal(9, replay.MaxPriority);

        // beta 0.5: w_i = (N P_i)^-beta / max_j (N P_j)^-beta = (stored_i / 0.5)^-0.5
        double[] weight = [0.5, Math.Sqrt(0.5), Math.Sqrt(1.0 / 6), 1, Math.Sqrt(0.5)];
        // 15 stratified draws: slices of 0.5 of the mass 7.5; transition i holds [cum_{i-1}, cum_i) of it
        double[] cumulative = [2, 3, 6, 6.5, 7.5];
        var (idx, w) = replay.Sample(15, beta: 0.5, new Rng(42));
        var replayRng = new Rng(42);
        var counts = new int[5];
        for (int b = 0; b < 15; b++)
        {
            double u = (b + replayRng.NextDouble()) * 0.5;
            int expected = Array.FindIndex(cumulative, c => u < c);
            Assert.Equal(expected, idx[b]);
            Assert.Equal(weight[expected], w[b], 1e-6);
            counts[idx[b]]++;
        }
        Assert.Equal([4, 2, 6, 1, 2], counts);   // 15 P_i: the slices fall exactly on the boundaries

        // a transition added without a priority gets the largest so far, 9, stored as 3
        replay.Add(new Transition([5], 0, 0, [5], [true], 0));
        Assert.Equal(3, replay.StoredPriority(5), 12);
        Assert.Equal(3 / 10.5, replay.Probability(5), 12);
    }

    /// <summary>Experience made once, on the first round, from the weights the learner sends.</summary>
    sealed class OneBatch(Func<float[], ExperienceBatch> make) : IExperienceSource
    {
        public int Actors => 1;
        public IReadOnlyList<Rng> Rngs => [];
        public IReadOnlyList<ExperienceBatch> Collect(float[]? weights) => [make(weights ?? throw new InvalidOperationException("no weights in the first round"))];
        public void Restart() { }
        public void Dispose() { }
    }

    [Fact]
    public void The_learner_sets_each_sampled_transitions_priority_to_its_td_error_plus_epsilon_to_the_alpha()
    {
        const int Obs = 3, A = 3, N = 4;
        const double Alpha = 0.6, Eps = 1e-3;
        var c = new ApexDqnConfig
        {
            Hidden = [5], Activation = "tanh", LayerNorm = false, BatchSize = N, LearningStarts = N, UpdatesPerStep = 1,
            ReplayCapacity = 8, PriorityAlpha = Alpha, PriorityEpsilon = Eps, TargetUpdatePeriod = 1000,
        };
        var shape = ApexDqn.ShapeOf(c, Obs, A);
        // the oracle's network: the weights the learner sends with its first round, before its update (the target network
        // equals the online one until the first target update, so the double-DQN target is the legal max of this one)
        var before = new QNetwork(shape, new Random(0));
        ExperienceBatch Make(float[] weights)
        {
            Net.LoadFlat(before, weights);
            var rng = new Random(51);
            float[] R() => [.. Enumerable.Range(0, Obs).Select(_ => Normal(rng))];
            float[] discounts = [0.729f, 0, 0.81f, 0.5f];
            var ts = new List<Transition>();
            for (int i = 0; i < N; i++)
            {
                var next = R();
                // the next state's best action is illegal, so a target that ignored the mask would be wrong
                int best = Net.MaskedArgmax(before.Forward(Net.Row(next)).Row(0), [true, true, true]);
                ts.Add(new Transition(R(), i % A, (float)(rng.NextDouble() * 2 - 1), next, [.. Enumerable.Range(0, A).Select(a => a != best)], discounts[i]));
            }
            // equal initial priorities: the update's 4 stratified draws fall on 4 different transitions
            return ExperienceBatch.Pack(Obs, A, steps: 1, ts, [1, 1, 1, 1], new EpisodeStats());
        }
        using var trainer = new ApexDqn(c, shape, _ => new OneBatch(Make), seed: 5);
        var initial = Net.Flatten(trainer.Policy);
        var values = trainer.Iterate();
        Assert.Equal(1, values["updates"]);
        Assert.Equal(initial, Net.Flatten(before));
        Assert.NotEqual(initial, Net.Flatten(trainer.Policy));   // the update took a step; the priorities are from before it

        var replay = trainer.Replay;
        Assert.Equal(N, replay.Count);
        var expected = new double[N];
        for (int i = 0; i < N; i++)
        {
            var t = replay[i];
            var next = before.Forward(Net.Row(t.NextObservation)).Row(0).ToArray();
            double legalMax = Enumerable.Range(0, A).Where(a => t.NextMask[a]).Max(a => (double)next[a]);
            double y = t.Return + t.Discount * legalMax;
            double tdError = before.Forward(Net.Row(t.Observation))[0, t.Action] - y;
            expected[i] = Math.Pow(Math.Abs(tdError) + Eps, Alpha);
        }
        for (int i = 0; i < N; i++)
        {
            Assert.Equal(expected[i], replay.StoredPriority(i), 1e-5 * expected[i]);
            Assert.Equal(expected[i] / expected.Sum(), replay.Probability(i), 1e-5);
        }
    }
}
