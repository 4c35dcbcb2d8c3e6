/* Internal view of the built-in environments: state layouts, definitions and the CartPole kernel.
 */
#ifndef RLY_ENV_BUILTIN_H
#define RLY_ENV_BUILTIN_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "env/fastmath.h"
#include "relay/env.h"

/* CartPole-v1 constants (Gymnasium's classic_control values), in float32. */
#define RLY_CP_GRAVITY 9.8f
#define RLY_CP_MASSPOLE 0.1f
#define RLY_CP_TOTAL_MASS 1.1f /* masspole + masscart (1.0) */
#define RLY_CP_INV_TOTAL_MASS (1.0f / 1.1f)
#define RLY_CP_LENGTH 0.5f /* half the pole's length */
#define RLY_CP_POLEMASS_LENGTH 0.05f
#define RLY_CP_FORCE 10.0f
#define RLY_CP_TAU 0.02f
#define RLY_CP_THETA_LIMIT 0.20943951023931953f /* 12 * 2 * pi / 360, rounded up in float32 */
#define RLY_CP_X_LIMIT 2.4f                     /* rounded up in float32 */
#define RLY_CP_MAX_STEPS 500

/* rly_cartpole_state is CartPole's state: x, x_dot, theta, theta_dot, its RNG and a done latch. */
typedef struct rly_cartpole_state {
    float s[4];
    uint64_t rng;
    bool done; /* set once terminated: later steps give reward 0 like Gymnasium */
} rly_cartpole_state;

/* rly_acrobot_state is Acrobot's state: theta1, theta2, dtheta1, dtheta2 (float64) and its RNG. */
typedef struct rly_acrobot_state {
    double s[4];
    uint64_t rng;
} rly_acrobot_state;

/* rly_mountain_car_state is MountainCar's state: position, velocity (float64) and its RNG. */
typedef struct rly_mountain_car_state {
    double pos, vel;
    uint64_t rng;
} rly_mountain_car_state;

/* rly_pendulum_state is Pendulum's state: theta, theta_dot (float64) and its RNG. */
typedef struct rly_pendulum_state {
    double th, thdot;
    uint64_t rng;
} rly_pendulum_state;

extern const relay_env_def rly_env_cartpole;
extern const relay_env_def rly_env_acrobot;
extern const relay_env_def rly_env_mountain_car;
extern const relay_env_def rly_env_pendulum;

/* rly_cartpole_reset_values draws CartPole's first state from seed (uniform(-0.05, 0.05) x 4). */
void rly_cartpole_reset_values(uint64_t seed, uint64_t *rng, float s[4]);

/*
 * rly_cartpole_out_of_bounds is Gymnasium's termination test `x < -2.4 or x > 2.4 or theta <
 * -0.20943951023931953 or theta > 0.20943951023931953`, evaluated as Gymnasium does: the float32
 * state against the double thresholds. Both thresholds round up in float32, so for a float v,
 * (double)v > 2.4 exactly when v >= 2.4f (likewise for theta and the negative side); comparing
 * float32 with >= keeps the vectorised loop in float32 and gives the same answer bit for bit,
 * including a state that lands exactly on the float32 threshold (Gymnasium terminates there).
 */
static inline bool rly_cartpole_out_of_bounds(float x, float theta)
{
    return (x <= -RLY_CP_X_LIMIT) | (x >= RLY_CP_X_LIMIT) | (theta <= -RLY_CP_THETA_LIMIT) |
           (theta >= RLY_CP_THETA_LIMIT);
}

/*
 * rly_cartpole_advance applies one Euler step with force (+-10) to (x, x_dot, theta, theta_dot)
 * and returns whether the new state is terminal. |theta| must be within RLY_SINCOS_MAX_ARG.
 * Shared by the scalar step and the vecenv's structure-of-arrays loop so both give equal bits.
 */
static inline bool rly_cartpole_advance(float *x, float *x_dot, float *theta, float *theta_dot,
                                        float force)
{
    float st, ct;
    rly_sincosf(*theta, &st, &ct);
    float td = *theta_dot;
    /* Gymnasium divides by total_mass; multiplying by its reciprocal shortens the latency chain
       of one step (a single env is latency-bound) at a cost of about 1 ulp. */
    float temp = (force + RLY_CP_POLEMASS_LENGTH * (td * td) * st) * RLY_CP_INV_TOTAL_MASS;
    float thetaacc =
        (RLY_CP_GRAVITY * st - ct * temp) /
        (RLY_CP_LENGTH * (4.0f / 3.0f - RLY_CP_MASSPOLE * (ct * ct) * RLY_CP_INV_TOTAL_MASS));
    float xacc = temp - RLY_CP_POLEMASS_LENGTH * thetaacc * ct * RLY_CP_INV_TOTAL_MASS;
    float nx = *x + RLY_CP_TAU * *x_dot;
    float nxd = *x_dot + RLY_CP_TAU * xacc;
    float nth = *theta + RLY_CP_TAU * td;
    float nthd = td + RLY_CP_TAU * thetaacc;
    *x = nx;
    *x_dot = nxd;
    *theta = nth;
    *theta_dot = nthd;
    return rly_cartpole_out_of_bounds(nx, nth);
}

#endif
