//! The built-in prices: USD per million tokens for the well-known models of each provider kind, each row with
//! where it was read and when. A deployment's configured `price` overrides its row; a model with neither is
//! unpriced (never $0). Rows match a deployment's model by name or by a dated or versioned name that begins with
//! it (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-5-20250929`, `anthropic.claude-3-haiku-20240307-v1:0`).

use super::{Price, Row, Vendor};

pub static TABLE: &[Row] = &[
    // Anthropic (Claude API): cached_input = cache hits, cache_write = 5-minute cache write. From the pricing
    // page (stored copy, the Fable 5.1 edition, fetched with ?ref=optimizesmart.com), its earlier stored copy
    // under /docs/en/docs/ for rows the newer copy did not show (Sonnet 4.x, Haiku), and model overview pages
    // for later models. inference_geo "us" bills 1.1x: configure a price for that.
    // Third-party source: Anthropic's own page for Fable 5.2 (released 2026-11-09) is not stored. The same
    // $8/$40 and $0.20 cache read are given by phuryn/claude-usage v1.5.7 (checked against platform.claude.com
    // 2026-12-01).
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-fable-5-2",
        price: Price {
            input: 8.0,
            output: 40.0,
            cached_input: 0.2,
            cache_write: 10.0,
        },
        source: "https://github.com/archid21/rightsize/releases/tag/v0.10.2",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-fable-5-1",
        price: Price {
            input: 10.0,
            output: 50.0,
            cached_input: 0.25,
            cache_write: 12.5,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-fable-5",
        price: Price {
            input: 10.0,
            output: 50.0,
            cached_input: 1.0,
            cache_write: 12.5,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-5-5",
        price: Price {
            input: 4.0,
            output: 20.0,
            cached_input: 0.2,
            cache_write: 5.0,
        },
        source: "https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-5",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-4-8",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-4-7",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-4-6",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-4-5",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    // Retired on the Claude API (still served on Bedrock and Google Cloud), per the pricing page.
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-opus-4-1",
        price: Price {
            input: 15.0,
            output: 75.0,
            cached_input: 1.5,
            cache_write: 18.75,
        },
        source: "https://platform.claude.com/docs/en/about-claude/pricing",
        checked: "2026-12-07",
    },
    // The stored overview predates 2026-10-07; several third-party trackers report cache hits cut to $0.10 on
    // that date, which no stored Anthropic page shows. Kept at the vendor's $0.20 until that can be confirmed.
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-sonnet-5-5",
        price: Price {
            input: 2.0,
            output: 10.0,
            cached_input: 0.2,
            cache_write: 2.5,
        },
        source: "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview",
        checked: "2026-12-07",
    },
    // $2/$10 stayed the standard price after 2026-09-01 (the overview's later, legacy copy still lists it).
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-sonnet-5",
        price: Price {
            input: 2.0,
            output: 10.0,
            cached_input: 0.2,
            cache_write: 2.5,
        },
        source: "https://platform.claude.com/docs/zh-CN/models/sonnet-5/overview",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-sonnet-4-6",
        price: Price {
            input: 3.0,
            output: 15.0,
            cached_input: 0.3,
            cache_write: 3.75,
        },
        source: "https://platform.claude.com/docs/en/docs/about-claude/pricing",
        checked: "2026-12-07",
    },
    // Base tier: prompts over 200K tokens are billed at a higher long-context rate.
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-sonnet-4-5",
        price: Price {
            input: 3.0,
            output: 15.0,
            cached_input: 0.3,
            cache_write: 3.75,
        },
        source: "https://platform.claude.com/docs/en/docs/about-claude/pricing",
        checked: "2026-12-07",
    },
    // Base tier, prompts up to 100K tokens (a longer prompt bills every token at 5x: $0.50/$2.50). The stored
    // excerpt stops before the cache-read line; $0.01 is 0.1x input, as every third-party tracker also lists.
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-haiku-5-5",
        price: Price {
            input: 0.1,
            output: 0.5,
            cached_input: 0.01,
            cache_write: 0.125,
        },
        source: "https://platform.claude.com/docs/zh-TW/models/haiku-5-5/overview",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-haiku-4-5",
        price: Price {
            input: 1.0,
            output: 5.0,
            cached_input: 0.1,
            cache_write: 1.25,
        },
        source: "https://platform.claude.com/docs/en/docs/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-3-5-haiku",
        price: Price {
            input: 0.8,
            output: 4.0,
            cached_input: 0.08,
            cache_write: 1.0,
        },
        source: "https://platform.claude.com/docs/en/docs/about-claude/pricing",
        checked: "2026-12-07",
    },
    Row {
        vendor: Vendor::Anthropic,
        model: "claude-3-haiku",
        price: Price {
            input: 0.25,
            output: 1.25,
            cached_input: 0.03,
            cache_write: 0.3,
        },
        source: "https://platform.claude.com/docs/en/docs/about-claude/pricing",
        checked: "2026-12-07",
    },
    // Amazon Bedrock, Standard on-demand, US East (N. Virginia), from AWS's own pricing cache
    // (aws/agent-toolkit-for-aws, "checked against aws.amazon.com/bedrock/pricing", last updated 2026-09-03):
    // the Bedrock pricing page is not stored. Claude rows equal Anthropic's list prices; geo / in-region
    // endpoints of Claude 4.5 and later bill ~10% more, which one row per model cannot express (cross-region
    // prefixes are stripped), so configure a price for those deployments. No row for anthropic.claude-fable-5:
    // it would also match anthropic.claude-fable-5-2 ($8/$40) at $10/$50.
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-fable-5-1",
        price: Price {
            input: 10.0,
            output: 50.0,
            cached_input: 0.25,
            cache_write: 12.5,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-opus-4-8",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-opus-4-6",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-opus-4-5",
        price: Price {
            input: 5.0,
            output: 25.0,
            cached_input: 0.5,
            cache_write: 6.25,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-sonnet-5",
        price: Price {
            input: 2.0,
            output: 10.0,
            cached_input: 0.2,
            cache_write: 2.5,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-sonnet-4-6",
        price: Price {
            input: 3.0,
            output: 15.0,
            cached_input: 0.3,
            cache_write: 3.75,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    // Base tier: the long-context SKU is $6/$22.50.
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-sonnet-4-5",
        price: Price {
            input: 3.0,
            output: 15.0,
            cached_input: 0.3,
            cache_write: 3.75,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "anthropic.claude-haiku-4-5",
        price: Price {
            input: 1.0,
            output: 5.0,
            cached_input: 0.1,
            cache_write: 1.25,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    // Nova: AWS states cache reads are 75% below the input price (so 0.25x input); cache_write = input.
    Row {
        vendor: Vendor::Bedrock,
        model: "amazon.nova-micro",
        price: Price {
            input: 0.035,
            output: 0.14,
            cached_input: 0.00875,
            cache_write: 0.035,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "amazon.nova-lite",
        price: Price {
            input: 0.06,
            output: 0.24,
            cached_input: 0.015,
            cache_write: 0.06,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    Row {
        vendor: Vendor::Bedrock,
        model: "amazon.nova-pro",
        price: Price {
            input: 0.8,
            output: 3.2,
            cached_input: 0.2,
            cache_write: 0.8,
        },
        source: "https://github.com/aws/agent-toolkit-for-aws/blob/02b472450a79c1f00d705f9649717dce6ea55bf3/plugins/aws-startup-advisor/skills/gcp-to-aws/references/shared/pricing-cache.md",
        checked: "2026-09-03",
    },
    // OpenAI, Standard tier. Third-party source: OpenAI's pricing page is not stored, so these are
    // pydantic/genai-prices (snapshot of 2026-08-21, transcribed from developers.openai.com/api/docs/pricing);
    // input/output agree with AWS's pricing cache above. cache_write = input (no separate write charge for these
    // models). The -pro and o3-mini rows keep those names from matching the cheaper base rows.
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-5",
        price: Price {
            input: 1.25,
            output: 10.0,
            cached_input: 0.125,
            cache_write: 1.25,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-5-mini",
        price: Price {
            input: 0.25,
            output: 2.0,
            cached_input: 0.025,
            cache_write: 0.25,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-5-nano",
        price: Price {
            input: 0.05,
            output: 0.4,
            cached_input: 0.005,
            cache_write: 0.05,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    // No cached-input rate is listed for gpt-5-pro.
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-5-pro",
        price: Price {
            input: 15.0,
            output: 120.0,
            cached_input: 15.0,
            cache_write: 15.0,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-4.1",
        price: Price {
            input: 2.0,
            output: 8.0,
            cached_input: 0.5,
            cache_write: 2.0,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-4.1-mini",
        price: Price {
            input: 0.4,
            output: 1.6,
            cached_input: 0.1,
            cache_write: 0.4,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-4.1-nano",
        price: Price {
            input: 0.1,
            output: 0.4,
            cached_input: 0.025,
            cache_write: 0.1,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-4o",
        price: Price {
            input: 2.5,
            output: 10.0,
            cached_input: 1.25,
            cache_write: 2.5,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "gpt-4o-mini",
        price: Price {
            input: 0.15,
            output: 0.6,
            cached_input: 0.075,
            cache_write: 0.15,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "o3",
        price: Price {
            input: 2.0,
            output: 8.0,
            cached_input: 0.5,
            cache_write: 2.0,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    // No cached-input rate is listed for o3-pro.
    Row {
        vendor: Vendor::OpenAi,
        model: "o3-pro",
        price: Price {
            input: 20.0,
            output: 80.0,
            cached_input: 20.0,
            cache_write: 20.0,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "o3-mini",
        price: Price {
            input: 1.1,
            output: 4.4,
            cached_input: 0.55,
            cache_write: 1.1,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "o4-mini",
        price: Price {
            input: 1.1,
            output: 4.4,
            cached_input: 0.275,
            cache_write: 1.1,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "text-embedding-3-small",
        price: Price {
            input: 0.02,
            output: 0.0,
            cached_input: 0.02,
            cache_write: 0.02,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::OpenAi,
        model: "text-embedding-3-large",
        price: Price {
            input: 0.13,
            output: 0.0,
            cached_input: 0.13,
            cache_write: 0.13,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/openai.yml",
        checked: "2026-08-21",
    },
    // Gemini Developer API, paid Standard tier, text input. Third-party source: Google's pricing page is not
    // stored, so these are pydantic/genai-prices (snapshot of 2026-08-21, transcribed from
    // ai.google.dev/gemini-api/docs/pricing). cached_input = context caching price (storage per hour is not
    // modelled); cache_write = input.
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-3.5-flash",
        price: Price {
            input: 1.5,
            output: 9.0,
            cached_input: 0.15,
            cache_write: 1.5,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-3.5-flash-lite",
        price: Price {
            input: 0.3,
            output: 2.5,
            cached_input: 0.03,
            cache_write: 0.3,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
    // Base tier, prompts up to 200K tokens (over 200K: $4/$18); the source lists it as gemini-3.1-pro-preview.
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-3.1-pro",
        price: Price {
            input: 2.0,
            output: 12.0,
            cached_input: 0.2,
            cache_write: 2.0,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
    // Base tier, prompts up to 200K tokens (over 200K: $2.50/$15).
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-2.5-pro",
        price: Price {
            input: 1.25,
            output: 10.0,
            cached_input: 0.125,
            cache_write: 1.25,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-2.5-flash",
        price: Price {
            input: 0.3,
            output: 2.5,
            cached_input: 0.03,
            cache_write: 0.3,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-2.5-flash-lite",
        price: Price {
            input: 0.1,
            output: 0.4,
            cached_input: 0.01,
            cache_write: 0.1,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
    // Deprecated (third-party pages report its shutdown for 2026-06-01); kept for historical records.
    Row {
        vendor: Vendor::Gemini,
        model: "gemini-2.0-flash",
        price: Price {
            input: 0.1,
            output: 0.4,
            cached_input: 0.025,
            cache_write: 0.1,
        },
        source: "https://github.com/pydantic/genai-prices/blob/47df840a5ab10bbcffb8e5ac01b9899032245d1b/prices/providers/google.yml",
        checked: "2026-08-21",
    },
];
